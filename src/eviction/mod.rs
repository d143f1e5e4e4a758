//! Eviction: node and pod signals, thresholds, ranking and decisions (mirrors
//! `pkg/kubelet/eviction`): [`thresholds`] (configuration), [`signals`] (what is observed),
//! [`helpers`] (pure decisions) and [`manager`] (the loop that acts), [`explain`] (`minikubelet explain-eviction`),
//! [`threshold_notifier`] (kernel memory notifications that wake the manager).
pub mod explain;
pub mod helpers;
pub mod manager;
pub mod signals;
pub mod threshold_notifier;
pub mod thresholds;
