//! Container state reasons as the kubelet and the runtime report them.
//!
//! Waiting reasons come from the kubelet (`pkg/kubelet/kubelet_pods.go`,
//! `pkg/kubelet/container/sync_result.go`, `kuberuntime/kuberuntime_container.go`,
//! `pkg/kubelet/images`); terminated reasons come from the runtime (containerd's CRI server
//! `helpers.go`), except `ContainerStatusUnknown`, which the kubelet synthesises.

use k8s_openapi::api::core::v1::{ContainerStateWaiting, Pod};

// --- waiting reasons set by the kubelet itself (kubelet_pods.go) ---

/// Default waiting reason of a container that has no status yet and the pod has no init containers.
pub const CONTAINER_CREATING: &str = "ContainerCreating";
/// Default waiting reason of a container that has no status yet when the pod has init containers.
pub const POD_INITIALIZING: &str = "PodInitializing";

// --- waiting reasons from start failures (sync_result.go, kuberuntime_container.go) ---

/// The container is in crash-loop backoff.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
/// Building the container's config failed (env, mounts, user...).
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Creating the container failed.
pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
/// The pre-create hook (topology/cpu manager) failed.
pub const PRE_CREATE_HOOK_ERROR: &str = "PreCreateHookError";
/// The pre-start hook failed.
pub const PRE_START_HOOK_ERROR: &str = "PreStartHookError";
/// The postStart lifecycle hook failed; the container was killed.
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";
/// Starting the container failed.
pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
/// Killing the container failed.
pub const KILL_CONTAINER_ERROR: &str = "KillContainerError";
/// Creating the pod sandbox failed.
pub const CREATE_POD_SANDBOX_ERROR: &str = "CreatePodSandboxError";
/// Configuring the pod sandbox failed.
pub const CONFIG_POD_SANDBOX_ERROR: &str = "ConfigPodSandboxError";
/// Killing the pod sandbox failed.
pub const KILL_POD_SANDBOX_ERROR: &str = "KillPodSandboxError";

// --- image waiting reasons (pkg/kubelet/images); minikubelet pulls no images, kept for parity ---

/// Pulling the image failed.
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
/// The image pull is in backoff.
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
/// imagePullPolicy is Never and the image is absent.
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
/// The image name is invalid.
pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";
/// Inspecting the image failed.
pub const IMAGE_INSPECT_ERROR: &str = "ImageInspectError";

// --- terminated reasons (set by the runtime: containerd CRI helpers.go) ---

/// Exit code 0.
pub const COMPLETED: &str = "Completed";
/// Non-zero exit code.
pub const ERROR: &str = "Error";
/// Killed by the OOM killer.
pub const OOM_KILLED: &str = "OOMKilled";
/// The process could not be started (exit code 128).
pub const START_ERROR: &str = "StartError";
/// Synthesised by the kubelet when a running container vanished (see the two constants below).
pub const CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
/// Exit code the kubelet reports with `ContainerStatusUnknown`.
pub const CONTAINER_STATUS_UNKNOWN_EXIT_CODE: i32 = 137;
/// Message the kubelet reports with `ContainerStatusUnknown` when the pod was terminated.
pub const CONTAINER_STATUS_UNKNOWN_MESSAGE: &str =
    "The container could not be located when the pod was terminated";
/// Exit code containerd reports with `StartError`.
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// The waiting state of a container without status: `PodInitializing` if the pod has init
/// containers, else `ContainerCreating` (`convertToAPIContainerStatuses`).
pub fn default_waiting_state(pod: &Pod) -> ContainerStateWaiting {
    let has_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|ics| !ics.is_empty());
    ContainerStateWaiting {
        reason: Some(
            if has_init {
                POD_INITIALIZING
            } else {
                CONTAINER_CREATING
            }
            .to_string(),
        ),
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    #[test]
    fn default_waiting_state_depends_on_init_containers() {
        let c = |n: &str| Container {
            name: n.into(),
            ..Default::default()
        };
        let cases: Vec<(&str, Option<PodSpec>, &str)> = vec![
            ("no spec", None, CONTAINER_CREATING),
            (
                "regular only",
                Some(PodSpec {
                    containers: vec![c("a")],
                    ..Default::default()
                }),
                CONTAINER_CREATING,
            ),
            (
                "empty init list",
                Some(PodSpec {
                    containers: vec![c("a")],
                    init_containers: Some(vec![]),
                    ..Default::default()
                }),
                CONTAINER_CREATING,
            ),
            (
                "with init",
                Some(PodSpec {
                    containers: vec![c("a")],
                    init_containers: Some(vec![c("i")]),
                    ..Default::default()
                }),
                POD_INITIALIZING,
            ),
        ];
        for (name, spec, want) in cases {
            let pod = Pod {
                spec,
                ..Default::default()
            };
            let got = default_waiting_state(&pod);
            assert_eq!(got.reason.as_deref(), Some(want), "{name}");
            assert_eq!(got.message, None, "{name}");
        }
    }
}
