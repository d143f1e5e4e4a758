//! Watch responses (`apiserver/pkg/endpoints/handlers/watch.go`): a chunked stream of
//! `WatchEvent`s, one JSON object per line, flushed per event. With a Table `Accept`, each
//! event's object is a one-row Table, and only the first carries the column definitions
//! (kubectl reuses the last ones it saw, to save bandwidth).

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::table::{Column, IncludeObject, row, table};
use crate::server::status::ApiError;

/// Events queued for a slow watcher before the producer waits.
pub const WATCH_BUFFER: usize = 64;

/// The streaming response for events sent on `rx`.
pub fn response(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    }));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// One event line.
pub fn line(type_: &str, object: Value) -> Bytes {
    let mut s = json!({"type": type_, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The `ERROR` event the API server sends when a watcher fell too far behind (410 Expired):
/// the client lists again.
pub fn expired(resource_version: u64) -> Bytes {
    let e = ApiError::new(
        axum::http::StatusCode::GONE,
        format!("too old resource version: {resource_version}"),
    );
    line("ERROR", e.to_status())
}

/// Encodes objects for one watch: whole objects, or one-row Tables.
pub struct Encoder {
    table: Option<(IncludeObject, &'static [Column])>,
    first: bool,
}

impl Encoder {
    /// Tables of `columns` if `table` asks for them, else objects.
    pub fn new(table: Option<IncludeObject>, columns: &'static [Column]) -> Self {
        Encoder {
            table: table.map(|t| (t, columns)),
            first: true,
        }
    }

    /// The event line for `object`, its cells and row conditions (used only for Tables).
    pub fn encode<T: Serialize>(
        &mut self,
        type_: &str,
        object: &T,
        cells: impl FnOnce() -> Vec<Value>,
        conditions: Option<Value>,
        resource_version: &str,
    ) -> Bytes {
        let value = match self.table {
            None => serde_json::to_value(object).unwrap_or(Value::Null),
            Some((include, columns)) => {
                let cols = self.first.then_some(columns);
                self.first = false;
                table(
                    cols,
                    vec![row(cells(), conditions, object, include)],
                    resource_version,
                )
            }
        };
        line(type_, value)
    }
}
