//! The TCP socket probe handler: success when a connection opens within the timeout.
//!
//! Mirrors `pkg/probe/tcp` (`DoTCPProbe`): the connection is closed at once, nothing is sent;
//! errors are failures with Go's dial error text.
use std::time::Duration;

use tokio::net::TcpStream;

use super::HandlerResult;
use super::http::{dial_error, join_host_port};

/// Opens and closes a TCP connection to `host:port` within `timeout`.
pub async fn probe_tcp(host: &str, port: u16, timeout: Duration) -> (HandlerResult, String) {
    let addr = join_host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => {
            drop(stream);
            (HandlerResult::Success, String::new())
        }
        Ok(Err(err)) => (HandlerResult::Failure, dial_error(&addr, host, &err)),
        Err(_) => (
            HandlerResult::Failure,
            format!("dial tcp {addr}: i/o timeout"),
        ),
    }
}
