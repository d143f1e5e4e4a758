//! Single-use tokens for streaming requests. Mirrors `pkg/kubelet/cri/streaming/request_cache.go`:
//! GetExec/GetAttach/GetPortForward store the validated request under a fresh token and answer
//! with a URL holding it; the first request to that URL takes the entry out. A token is
//! 8 characters of URL-safe base64 (6 random bytes), lives [`CACHE_TTL`], and at most
//! [`MAX_IN_FLIGHT`] may be outstanding.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// How long a token stays valid. The kubelet's value: the client connects right after the
/// kubelet got the URL, so a minute only has to cover a slow client; longer keeps unused
/// entries around longer.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// At most this many tokens outstanding (the kubelet's `maxInFlight`): bounds the memory a
/// client could pin by asking for URLs it never uses.
pub const MAX_IN_FLIGHT: usize = 1000;
/// Characters in a token.
pub const TOKEN_LEN: usize = 8;
/// Attempts at drawing a token that is not in use before giving up (the kubelet's `maxTries`).
const MAX_TRIES: usize = 10;

/// Errors of the cache.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// [`MAX_IN_FLIGHT`] tokens are outstanding.
    #[error("maximum number of in-flight requests exceeded ({max})")]
    TooManyInFlight { max: usize },
    /// No unused token could be drawn (practically impossible with 48 random bits).
    #[error("failed to generate unique token after {tries} tries")]
    NoUniqueToken { tries: usize },
}

struct Entry<T> {
    request: T,
    expires: Instant,
}

struct Inner<T> {
    entries: HashMap<String, Entry<T>>,
    /// Tokens in insertion order, for expiry.
    order: VecDeque<String>,
}

/// Requests by token.
pub struct RequestCache<T> {
    inner: Mutex<Inner<T>>,
    ttl: Duration,
    max_in_flight: usize,
}

impl<T> RequestCache<T> {
    /// A cache with the kubelet's TTL and bound.
    pub fn new() -> Self {
        Self::with_limits(CACHE_TTL, MAX_IN_FLIGHT)
    }

    /// A cache with a given TTL and bound (tests use short ones).
    pub fn with_limits(ttl: Duration, max_in_flight: usize) -> Self {
        RequestCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl,
            max_in_flight,
        }
    }

    /// Stores `request`; its token.
    pub fn insert(&self, request: T) -> Result<String, CacheError> {
        self.insert_at(request, Instant::now())
    }

    /// [`Self::insert`] at a given time.
    pub fn insert_at(&self, request: T, now: Instant) -> Result<String, CacheError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        gc(&mut inner, now);
        if inner.entries.len() >= self.max_in_flight {
            return Err(CacheError::TooManyInFlight {
                max: self.max_in_flight,
            });
        }
        let token = (0..MAX_TRIES)
            .map(|_| new_token())
            .find(|t| !inner.entries.contains_key(t))
            .ok_or(CacheError::NoUniqueToken { tries: MAX_TRIES })?;
        inner.order.push_back(token.clone());
        inner.entries.insert(
            token.clone(),
            Entry {
                request,
                expires: now + self.ttl,
            },
        );
        Ok(token)
    }

    /// Takes the request out (single use); `None` if unknown, used or expired.
    pub fn consume(&self, token: &str) -> Option<T> {
        self.consume_at(token, Instant::now())
    }

    /// [`Self::consume`] at a given time.
    pub fn consume_at(&self, token: &str, now: Instant) -> Option<T> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let entry = inner.entries.remove(token)?;
        inner.order.retain(|t| t != token);
        (now <= entry.expires).then_some(entry.request)
    }

    /// Tokens outstanding (expired ones included until the next insert).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .map(|i| i.entries.len())
            .unwrap_or_default()
    }

    /// Whether no token is outstanding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Default for RequestCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Drops expired entries from the front (they were inserted in expiry order).
fn gc<T>(inner: &mut Inner<T>, now: Instant) {
    while let Some(token) = inner.order.front() {
        match inner.entries.get(token) {
            Some(e) if e.expires >= now => break,
            _ => {
                if let Some(t) = inner.order.pop_front() {
                    inner.entries.remove(&t);
                }
            }
        }
    }
}

/// 6 random bytes as URL-safe base64 without padding: exactly 8 characters.
fn new_token() -> String {
    let raw: [u8; 6] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_8_url_safe_characters() {
        for _ in 0..100 {
            let t = new_token();
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(
                t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{t}"
            );
        }
    }

    #[test]
    fn single_use_expiry_and_bound() {
        let t0 = Instant::now();
        let cache = RequestCache::with_limits(Duration::from_secs(60), 2);
        let a = cache.insert_at("a", t0).unwrap();
        let b = cache.insert_at("b", t0).unwrap();
        assert_ne!(a, b);
        // Full: a third is refused while both are live.
        assert_eq!(
            cache.insert_at("c", t0 + Duration::from_secs(1)),
            Err(CacheError::TooManyInFlight { max: 2 })
        );
        // Single use.
        assert_eq!(cache.consume_at(&a, t0), Some("a"));
        assert_eq!(cache.consume_at(&a, t0), None);
        assert_eq!(cache.consume_at("nope1234", t0), None);
        // Expired: gone, and consuming it says so.
        assert_eq!(cache.consume_at(&b, t0 + Duration::from_secs(61)), None);
        // Expired entries free their slots on the next insert.
        let c = cache.insert_at("c", t0).unwrap();
        let _d = cache.insert_at("d", t0 + Duration::from_secs(30)).unwrap();
        let e = cache.insert_at("e", t0 + Duration::from_secs(61));
        assert!(e.is_ok(), "c expired and was collected: {e:?}");
        assert_eq!(cache.consume_at(&c, t0 + Duration::from_secs(61)), None);
    }
}
