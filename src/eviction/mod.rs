//! Eviction: node and pod signals, thresholds, ranking and decisions (mirrors
//! `pkg/kubelet/eviction`): [`thresholds`] (configuration), [`signals`] (what is observed),
//! [`helpers`] (pure decisions), [`local_storage`] (emptyDir `sizeLimit` and `ephemeral-storage`
//! limit evictions) and [`manager`] (the loop that acts), [`explain`] (`minikubelet explain-eviction`).
pub mod explain;
pub mod helpers;
pub mod local_storage;
pub mod manager;
pub mod signals;
pub mod thresholds;
