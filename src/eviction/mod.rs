//! Eviction: node and pod signals, thresholds, ranking and decisions (mirrors
//! `pkg/kubelet/eviction`): [`thresholds`] (configuration), [`signals`] (what is observed),
//! [`helpers`] (pure decisions), [`local_storage`] (emptyDir `sizeLimit` and `ephemeral-storage`
//! limit evictions), [`manager`] (the loop that acts), [`request`] (what it asks of the pod manager), [`threshold_notifier`] (kernel memory
//! notifications that wake the manager) and [`explain`] (`minikubelet explain-eviction`).
pub mod explain;
pub mod helpers;
pub mod local_storage;
pub mod manager;
pub mod request;
pub mod signals;
pub mod threshold_notifier;
pub mod thresholds;
