//! Eviction: node and pod signals, thresholds, ranking and decisions (mirrors
//! `pkg/kubelet/eviction`). Only the threshold configuration lives here so far.
pub mod thresholds;
