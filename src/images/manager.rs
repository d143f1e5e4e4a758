//! The kubelet's image manager (`pkg/kubelet/images/image_manager.go` `EnsureImageExists`,
//! `puller.go`): the pull policy and its defaults, `ErrImageNeverPull`, `ErrImagePull` and
//! `ImagePullBackOff` with the kubelet's per-image back-off, serialized pulls
//! (`serializeImagePulls: true`), and the facts the `Pulling`/`Pulled` events carry. Below it,
//! an [`ImageService`] of the CRI's shape (pull, list, remove, status) that the store implements.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::reference::ImageRef;
use super::registry::{self, PullError, PullOptions, Pulled};
use super::store::{ImageRecord, Store, StoreError};

/// Boxed future of the object-safe [`ImageService`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The CRI ImageService in Rust: what the runtime seam holds as `Arc<dyn ImageService>`.
pub trait ImageService: Send + Sync {
    fn pull_image<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<Pulled, PullError>>;
    fn list_images(&self) -> Result<Vec<ImageRecord>, StoreError>;
    /// `None`: the node does not have it.
    fn image_status(&self, image: &ImageRef) -> Result<Option<ImageRecord>, StoreError>;
    fn remove_image(&self, image: &str) -> Result<(), StoreError>;
}

/// The store with a registry client behind it.
pub struct StoreImageService {
    pub store: Store,
    pub options: PullOptions,
}

impl ImageService for StoreImageService {
    fn pull_image<'a>(&'a self, image: &'a ImageRef) -> BoxFuture<'a, Result<Pulled, PullError>> {
        Box::pin(registry::pull(&self.store, image, &self.options))
    }
    fn list_images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.store.list()
    }
    fn image_status(&self, image: &ImageRef) -> Result<Option<ImageRecord>, StoreError> {
        match self.store.get(&image.to_string()) {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn remove_image(&self, image: &str) -> Result<(), StoreError> {
        let _lock = self.store.lock()?;
        self.store.remove(image)?;
        self.store.sweep().map(drop)
    }
}

/// `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The API's defaulting: `Always` for `:latest` or no tag, else `IfNotPresent`.
    pub fn resolve(given: Option<&str>, image: &ImageRef) -> PullPolicy {
        match given {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ if image.is_latest() => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// Why an image is not there, with the kubelet's reason strings.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EnsureError {
    #[error("Failed to apply default image tag {image:?}: {why}")]
    InvalidImageName { image: String, why: String },
    #[error("Container image {image:?} is not present with pull policy of Never")]
    NeverPull { image: String },
    #[error("Failed to pull image {image:?}: {why}")]
    Pull { image: String, why: String },
    #[error("Back-off pulling image {image:?}")]
    BackOff { image: String },
}

impl EnsureError {
    /// The container's waiting reason.
    pub fn reason(&self) -> &'static str {
        match self {
            EnsureError::InvalidImageName { .. } => "InvalidImageName",
            EnsureError::NeverPull { .. } => "ErrImageNeverPull",
            EnsureError::Pull { .. } => "ErrImagePull",
            EnsureError::BackOff { .. } => "ImagePullBackOff",
        }
    }
}

/// An event the caller records (reason, message), in the kubelet's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEvent {
    pub reason: &'static str,
    pub message: String,
    pub warning: bool,
}

/// What `ensure_image_exists` found or did.
#[derive(Clone, Debug)]
pub struct Ensured {
    pub record: ImageRecord,
    /// Size in bytes and time of the pull, when one happened.
    pub pulled: Option<(u64, Duration)>,
    pub events: Vec<ImageEvent>,
}

/// `flowcontrol.Backoff` as the kubelet builds it for image pulls.
#[derive(Debug)]
struct BackoffEntry {
    delay: Duration,
    last: Instant,
}

/// 10 s initial, doubling to 300 s: `backOffPeriod` and `MaxContainerBackOff` in
/// `pkg/kubelet/kubelet.go` (the image puller shares them).
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct ImageManager {
    service: Arc<dyn ImageService>,
    backoff: Mutex<HashMap<String, BackoffEntry>>,
    /// `serializeImagePulls`: one pull at a time (the kubelet's default).
    serial: Option<tokio::sync::Mutex<()>>,
}

impl ImageManager {
    pub fn new(service: Arc<dyn ImageService>, serialize_image_pulls: bool) -> Self {
        ImageManager {
            service,
            backoff: Mutex::new(HashMap::new()),
            serial: serialize_image_pulls.then(|| tokio::sync::Mutex::new(())),
        }
    }

    fn in_backoff(&self, key: &str) -> bool {
        let b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        b.get(key).is_some_and(|e| e.last.elapsed() < e.delay)
    }

    fn next_backoff(&self, key: &str) {
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let e = b.entry(key.to_string()).or_insert(BackoffEntry {
            delay: Duration::ZERO,
            last: now,
        });
        // An entry idle for twice the maximum starts over (flowcontrol's `hasExpired`).
        e.delay = if e.delay.is_zero() || now.duration_since(e.last) > 2 * BACKOFF_MAX {
            BACKOFF_INITIAL
        } else {
            (e.delay * 2).min(BACKOFF_MAX)
        };
        e.last = now;
    }

    /// `EnsureImageExists` for a container of pod `pod_uid`; every event, `Pulling` included,
    /// comes back with the result.
    pub async fn ensure_image_exists(
        &self,
        pod_uid: &str,
        image: &str,
        policy: Option<&str>,
    ) -> Result<Ensured, EnsureError> {
        let pulling = std::sync::Mutex::new(None);
        let mut res = self
            .ensure_image_exists_with(pod_uid, image, policy, &|e| {
                if let Ok(mut p) = pulling.lock() {
                    *p = Some(e);
                }
            })
            .await;
        if let (Ok(ok), Ok(Some(e))) = (res.as_mut(), pulling.lock().map(|mut p| p.take())) {
            ok.events.insert(0, e);
        }
        res
    }

    /// `EnsureImageExists`, with `on_pulling` called with the `Pulling` event as the pull
    /// begins (before it waits for the serialized puller), as the kubelet records it; the
    /// other events come back with the result.
    pub async fn ensure_image_exists_with(
        &self,
        pod_uid: &str,
        image: &str,
        policy: Option<&str>,
        on_pulling: &(dyn Fn(ImageEvent) + Sync),
    ) -> Result<Ensured, EnsureError> {
        let r = ImageRef::parse(image).map_err(|e| EnsureError::InvalidImageName {
            image: image.to_string(),
            why: e.reason.to_string(),
        })?;
        let policy = PullPolicy::resolve(policy, &r);
        let present = self.service.image_status(&r).ok().flatten();
        let mut events = Vec::new();
        match (policy, present) {
            (PullPolicy::Never, None) => {
                let e = EnsureError::NeverPull {
                    image: image.to_string(),
                };
                return Err(e);
            }
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(record)) => {
                events.push(ImageEvent {
                    reason: "Pulled",
                    message: format!("Container image {image:?} already present on machine"),
                    warning: false,
                });
                return Ok(Ensured {
                    record,
                    pulled: None,
                    events,
                });
            }
            _ => {}
        }
        let key = format!("{pod_uid}_{image}");
        if self.in_backoff(&key) {
            return Err(EnsureError::BackOff {
                image: image.to_string(),
            });
        }
        on_pulling(ImageEvent {
            reason: "Pulling",
            message: format!("Pulling image {image:?}"),
            warning: false,
        });
        let waited = Instant::now();
        let _guard = match &self.serial {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let started = Instant::now();
        match self.service.pull_image(&r).await {
            Ok(p) => {
                let took = started.elapsed();
                let total = waited.elapsed();
                events.push(ImageEvent {
                    reason: "Pulled",
                    message: format!(
                        "Successfully pulled image {image:?} in {:.3}s ({:.3}s including waiting). Image size: {} bytes.",
                        took.as_secs_f64(),
                        total.as_secs_f64(),
                        p.record.size
                    ),
                    warning: false,
                });
                Ok(Ensured {
                    pulled: Some((p.record.size, took)),
                    record: p.record,
                    events,
                })
            }
            Err(e) => {
                self.next_backoff(&key);
                tracing::warn!(podUID = pod_uid, image, error = %e, "image pull failed");
                Err(EnsureError::Pull {
                    image: image.to_string(),
                    why: e.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An image service that fails the first `fail` pulls.
    struct Fake {
        have: Mutex<Vec<String>>,
        pulls: AtomicUsize,
        fail: usize,
    }

    fn rec(name: &str) -> ImageRecord {
        ImageRecord {
            name: name.into(),
            id: "sha256:c".into(),
            manifest_digest: "sha256:m".into(),
            layers: vec![],
            size: 42,
            pulled_at: 0,
            last_used: 0,
        }
    }

    impl ImageService for Fake {
        fn pull_image<'a>(
            &'a self,
            image: &'a ImageRef,
        ) -> BoxFuture<'a, Result<Pulled, PullError>> {
            Box::pin(async move {
                let n = self.pulls.fetch_add(1, Ordering::SeqCst);
                if n < self.fail {
                    return Err(PullError::Invalid {
                        image: image.to_string(),
                        why: "registry down".into(),
                    });
                }
                self.have.lock().unwrap().push(image.to_string());
                Ok(Pulled {
                    record: rec(&image.to_string()),
                    fetched: 42,
                    duration: Duration::from_millis(5),
                })
            })
        }
        fn list_images(&self) -> Result<Vec<ImageRecord>, StoreError> {
            Ok(vec![])
        }
        fn image_status(&self, image: &ImageRef) -> Result<Option<ImageRecord>, StoreError> {
            let s = image.to_string();
            Ok(self.have.lock().unwrap().contains(&s).then(|| rec(&s)))
        }
        fn remove_image(&self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn mgr(fail: usize) -> (Arc<Fake>, ImageManager) {
        let f = Arc::new(Fake {
            have: Mutex::new(vec![]),
            pulls: AtomicUsize::new(0),
            fail,
        });
        (f.clone(), ImageManager::new(f, true))
    }

    #[test]
    fn policy_defaults() {
        let p = |s: &str, g: Option<&str>| PullPolicy::resolve(g, &ImageRef::parse(s).unwrap());
        assert_eq!(p("nginx", None), PullPolicy::Always);
        assert_eq!(p("nginx:latest", None), PullPolicy::Always);
        assert_eq!(p("nginx:1.27", None), PullPolicy::IfNotPresent);
        assert_eq!(p("nginx:1.27", Some("Always")), PullPolicy::Always);
        assert_eq!(p("nginx", Some("Never")), PullPolicy::Never);
    }

    #[tokio::test(start_paused = true)]
    async fn pulls_then_present_never_and_invalid() {
        let (f, m) = mgr(0);
        let e = m
            .ensure_image_exists("u", "nginx:1", Some("Never"))
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "ErrImageNeverPull");
        let ok = m.ensure_image_exists("u", "nginx:1", None).await.unwrap();
        assert_eq!(ok.pulled.unwrap().0, 42);
        assert_eq!(ok.events[0].reason, "Pulling");
        assert!(ok.events[1].message.contains("Image size: 42 bytes"));
        let again = m.ensure_image_exists("u", "nginx:1", None).await.unwrap();
        assert!(again.pulled.is_none());
        assert!(again.events[0].message.contains("already present"));
        // :latest pulls every time.
        m.ensure_image_exists("u", "nginx", None).await.unwrap();
        m.ensure_image_exists("u", "nginx", None).await.unwrap();
        assert_eq!(f.pulls.load(Ordering::SeqCst), 3);
        let e = m
            .ensure_image_exists("u", "Bad:Name", None)
            .await
            .unwrap_err();
        assert_eq!(e.reason(), "InvalidImageName");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_10s_doubling_to_300s() {
        let (f, m) = mgr(usize::MAX);
        let e = m.ensure_image_exists("u", "x:1", None).await.unwrap_err();
        assert_eq!(e.reason(), "ErrImagePull");
        let e = m.ensure_image_exists("u", "x:1", None).await.unwrap_err();
        assert_eq!(e.reason(), "ImagePullBackOff");
        // Another pod's back-off is its own.
        assert_eq!(
            m.ensure_image_exists("v", "x:1", None)
                .await
                .unwrap_err()
                .reason(),
            "ErrImagePull"
        );
        let mut expect = BACKOFF_INITIAL;
        for _ in 0..8 {
            tokio::time::advance(expect - Duration::from_millis(1)).await;
            assert_eq!(
                m.ensure_image_exists("u", "x:1", None)
                    .await
                    .unwrap_err()
                    .reason(),
                "ImagePullBackOff"
            );
            tokio::time::advance(Duration::from_millis(1)).await;
            assert_eq!(
                m.ensure_image_exists("u", "x:1", None)
                    .await
                    .unwrap_err()
                    .reason(),
                "ErrImagePull"
            );
            expect = (expect * 2).min(BACKOFF_MAX);
        }
        assert_eq!(expect, BACKOFF_MAX);
        assert!(f.pulls.load(Ordering::SeqCst) >= 10);
    }
}
