//! The status manager: the latest status of every pod, published by the pod workers and read by
//! everyone else (the API server, eviction, admission).
//!
//! Mirrors `pkg/kubelet/status/status_manager.go`, minus the API-server sync: there is no control
//! plane, so the store itself is what `/pods` serves. Every change bumps a resource version, as
//! the API server would, so that a later `watch` can resume.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::broadcast;

/// A change to the pod store.
#[derive(Clone, Debug)]
pub enum PodChange {
    /// Added or updated.
    Modified(Arc<Pod>),
    /// Gone.
    Deleted(Arc<Pod>),
}

/// Pods by UID with their live status.
pub struct StatusManager {
    pods: RwLock<(u64, BTreeMap<String, Arc<Pod>>)>,
    changes: broadcast::Sender<PodChange>,
}

impl Default for StatusManager {
    fn default() -> Self {
        // A slow watcher that falls this many changes behind gets `Lagged` and must re-list:
        // more costs memory, fewer makes re-lists more frequent under churn.
        let (changes, _) = broadcast::channel(1024);
        StatusManager {
            pods: RwLock::new((0, BTreeMap::new())),
            changes,
        }
    }
}

impl StatusManager {
    /// Set a pod's object and status; returns false if nothing changed.
    pub fn set(&self, pod: Arc<Pod>) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Ok(mut guard) = self.pods.write() else {
            return false;
        };
        if let Some(old) = guard.1.get(&uid)
            && old.status == pod.status
            && old.metadata.labels == pod.metadata.labels
        {
            return false;
        }
        guard.0 += 1;
        let mut pod = (*pod).clone();
        pod.metadata.resource_version = Some(guard.0.to_string());
        let pod = Arc::new(pod);
        guard.1.insert(uid, pod.clone());
        let _ = self.changes.send(PodChange::Modified(pod));
        true
    }

    /// Forget a pod (it is fully terminated and cleaned up).
    pub fn remove(&self, uid: &str) {
        let Ok(mut guard) = self.pods.write() else {
            return;
        };
        guard.0 += 1;
        if let Some(p) = guard.1.remove(uid) {
            let _ = self.changes.send(PodChange::Deleted(p));
        }
    }

    /// Every pod, in UID order.
    pub fn list(&self) -> Vec<Arc<Pod>> {
        self.pods
            .read()
            .map(|g| g.1.values().cloned().collect())
            .unwrap_or_default()
    }

    /// One pod by UID.
    pub fn get(&self, uid: &str) -> Option<Arc<Pod>> {
        self.pods.read().ok().and_then(|g| g.1.get(uid).cloned())
    }

    /// The current resource version.
    pub fn resource_version(&self) -> u64 {
        self.pods.read().map(|g| g.0).unwrap_or(0)
    }

    /// Subscribe to changes.
    pub fn subscribe(&self) -> broadcast::Receiver<PodChange> {
        self.changes.subscribe()
    }
}
