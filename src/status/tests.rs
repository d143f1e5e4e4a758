//! Table tests, mostly the kubelet's own cases from `kubelet_pods_test.go` (`TestPodPhase*`)
//! and `status/generate_test.go`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodReadinessGate, PodSpec,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::conditions::*;
use super::phase::*;
use crate::api::pod::is_static as is_static_pod;
use crate::api::static_pod::{API_SOURCE as API_SERVER_SOURCE, CONFIG_SOURCE_ANNOTATION};

// ---- helpers named after the kubelet test helpers ----

fn state(s: ContainerState, name: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        state: Some(s),
        ..Default::default()
    }
}
fn waiting_state(name: &str) -> ContainerStatus {
    state(
        ContainerState {
            waiting: Some(ContainerStateWaiting::default()),
            ..Default::default()
        },
        name,
    )
}
fn with_last_exit(mut st: ContainerStatus, code: i32) -> ContainerStatus {
    st.last_state = Some(ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            ..Default::default()
        }),
        ..Default::default()
    });
    st
}
fn waiting_state_with_last_termination(name: &str) -> ContainerStatus {
    with_last_exit(waiting_state(name), 0)
}
fn waiting_state_with_non_zero_termination(name: &str) -> ContainerStatus {
    with_last_exit(waiting_state(name), -1)
}
fn running_state(name: &str) -> ContainerStatus {
    state(
        ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        },
        name,
    )
}
fn started_state(name: &str) -> ContainerStatus {
    ContainerStatus {
        started: Some(true),
        ..running_state(name)
    }
}
fn terminated(name: &str, code: i32) -> ContainerStatus {
    state(
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                ..Default::default()
            }),
            ..Default::default()
        },
        name,
    )
}
fn stopped_state(name: &str) -> ContainerStatus {
    terminated(name, 0)
}
fn succeeded_state(name: &str) -> ContainerStatus {
    terminated(name, 0)
}
fn failed_state(name: &str) -> ContainerStatus {
    terminated(name, -1)
}
fn ready(mut st: ContainerStatus) -> ContainerStatus {
    st.ready = true;
    st
}
fn no_state(name: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        ..Default::default()
    }
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        ..Default::default()
    }
}
fn sidecar(name: &str) -> Container {
    Container {
        restart_policy: Some("Always".into()),
        ..container(name)
    }
}
fn pod(init: Vec<Container>, containers: &[&str], restart_policy: &str) -> Pod {
    Pod {
        spec: Some(PodSpec {
            node_name: Some("machine".into()),
            init_containers: if init.is_empty() { None } else { Some(init) },
            containers: containers.iter().map(|n| container(n)).collect(),
            restart_policy: Some(restart_policy.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
fn static_pod(p: Pod) -> Pod {
    let mut p = p;
    p.metadata.annotations = Some(BTreeMap::from([(
        CONFIG_SOURCE_ANNOTATION.to_string(),
        "file".to_string(),
    )]));
    p
}

type PhaseCase = (
    &'static str,
    Vec<ContainerStatus>,
    Vec<ContainerStatus>,
    bool,
    &'static str,
);

fn run_phase_cases(p: &Pod, cases: Vec<PhaseCase>) {
    for (name, init, regular, terminal, want) in cases {
        assert_eq!(
            get_phase(p, &init, &regular, terminal),
            want,
            "[test {name}]"
        );
    }
}

#[test]
fn pod_phase_with_restart_always() {
    let p = pod(vec![], &["containerA", "containerB"], "Always");
    run_phase_cases(
        &p,
        vec![
            ("waiting", vec![], vec![], false, PENDING),
            (
                "all running",
                vec![],
                vec![running_state("containerA"), running_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "all stopped with restart always",
                vec![],
                vec![stopped_state("containerA"), stopped_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "all succeeded with restart always, but the pod is terminal",
                vec![],
                vec![succeeded_state("containerA"), succeeded_state("containerB")],
                true,
                SUCCEEDED,
            ),
            (
                "all stopped with restart always, but the pod is terminal",
                vec![],
                vec![succeeded_state("containerA"), failed_state("containerB")],
                true,
                FAILED,
            ),
            (
                "mixed state #1 with restart always",
                vec![],
                vec![running_state("containerA"), stopped_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "mixed state #2 with restart always",
                vec![],
                vec![running_state("containerA")],
                false,
                PENDING,
            ),
            (
                "mixed state #3 with restart always",
                vec![],
                vec![running_state("containerA"), waiting_state("containerB")],
                false,
                PENDING,
            ),
            (
                "backoff crashloop container with restart always",
                vec![],
                vec![
                    running_state("containerA"),
                    waiting_state_with_last_termination("containerB"),
                ],
                false,
                RUNNING,
            ),
            (
                "status without any state counts as unknown",
                vec![],
                vec![running_state("containerA"), no_state("containerB")],
                false,
                PENDING,
            ),
        ],
    );
}

#[test]
fn pod_phase_static_pod_ignores_pod_is_terminal() {
    // kubelet TODO(#116484): static pods fall through to the restartPolicy rules.
    let cases: Vec<(&str, &str, Vec<ContainerStatus>, bool, &str)> = vec![
        (
            "static, Always, all succeeded, terminal",
            "Always",
            vec![succeeded_state("a")],
            true,
            RUNNING,
        ),
        (
            "static, Always, failed, terminal",
            "Always",
            vec![failed_state("a")],
            true,
            RUNNING,
        ),
        (
            "static, OnFailure, failed, terminal",
            "OnFailure",
            vec![failed_state("a")],
            true,
            RUNNING,
        ),
        (
            "static, OnFailure, succeeded, terminal",
            "OnFailure",
            vec![succeeded_state("a")],
            true,
            SUCCEEDED,
        ),
        (
            "static, Never, failed, terminal",
            "Never",
            vec![failed_state("a")],
            true,
            FAILED,
        ),
    ];
    for (name, policy, statuses, terminal, want) in cases {
        let p = static_pod(pod(vec![], &["a"], policy));
        assert_eq!(
            get_phase(&p, &[], &statuses, terminal),
            want,
            "[test {name}]"
        );
        // The same pod from the API server is forced terminal.
        let mut api = p.clone();
        api.metadata.annotations = Some(BTreeMap::from([(
            CONFIG_SOURCE_ANNOTATION.to_string(),
            API_SERVER_SOURCE.to_string(),
        )]));
        let forced = if statuses[0]
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
        {
            SUCCEEDED
        } else {
            FAILED
        };
        assert_eq!(
            get_phase(&api, &[], &statuses, true),
            forced,
            "[api {name}]"
        );
    }
}

#[test]
fn pod_phase_with_restart_always_init_containers() {
    let p = pod(
        vec![container("containerX")],
        &["containerA", "containerB"],
        "Always",
    );
    run_phase_cases(
        &p,
        vec![
            ("empty, waiting", vec![], vec![], false, PENDING),
            (
                "init container running",
                vec![running_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container terminated non-zero",
                vec![failed_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container waiting, terminated zero",
                vec![waiting_state_with_last_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container waiting, terminated non-zero",
                vec![waiting_state_with_non_zero_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container waiting, not terminated",
                vec![waiting_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container succeeded",
                vec![succeeded_state("containerX")],
                vec![running_state("containerA"), running_state("containerB")],
                false,
                RUNNING,
            ),
        ],
    );
}

#[test]
fn pod_phase_with_restart_always_restartable_init_containers() {
    let p = pod(
        vec![sidecar("containerX")],
        &["containerA", "containerB"],
        "Always",
    );
    let both_running = || vec![running_state("containerA"), running_state("containerB")];
    let both_succeeded = || vec![succeeded_state("containerA"), succeeded_state("containerB")];
    run_phase_cases(
        &p,
        vec![
            ("empty, waiting", vec![], vec![], false, PENDING),
            (
                "restartable init container running",
                vec![running_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container stopped",
                vec![stopped_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container waiting, terminated zero",
                vec![waiting_state_with_last_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container waiting, terminated non-zero",
                vec![waiting_state_with_non_zero_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container waiting, not terminated",
                vec![waiting_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container started, 1/2 regular container running",
                vec![started_state("containerX")],
                vec![running_state("containerA")],
                false,
                PENDING,
            ),
            (
                "restartable init container started, all regular containers running",
                vec![started_state("containerX")],
                both_running(),
                false,
                RUNNING,
            ),
            (
                "restartable init container running, all regular containers running",
                vec![running_state("containerX")],
                both_running(),
                false,
                RUNNING,
            ),
            (
                "restartable init container stopped, all regular containers running",
                vec![stopped_state("containerX")],
                both_running(),
                false,
                RUNNING,
            ),
            (
                "backoff crashloop restartable init container, all regular containers running",
                vec![waiting_state_with_last_termination("containerX")],
                both_running(),
                false,
                RUNNING,
            ),
            (
                "all regular containers succeeded and restartable init container failed with restart always, but the pod is terminal",
                vec![failed_state("containerX")],
                both_succeeded(),
                true,
                SUCCEEDED,
            ),
            (
                "all regular containers succeeded and restartable init container succeeded with restart always, but the pod is terminal",
                vec![succeeded_state("containerX")],
                both_succeeded(),
                true,
                SUCCEEDED,
            ),
        ],
    );
}

#[test]
fn pod_phase_with_restart_always_and_pod_has_run() {
    let p = pod(
        vec![container("containerX"), sidecar("containerY")],
        &["containerA"],
        "Always",
    );
    run_phase_cases(
        &p,
        vec![
            (
                "regular init containers, restartable init container and regular container are all running",
                vec![running_state("containerX"), running_state("containerY")],
                vec![running_state("containerA")],
                false,
                PENDING,
            ),
            (
                "regular containers is stopped, restartable init container and regular int container are both running",
                vec![running_state("containerX"), running_state("containerY")],
                vec![stopped_state("containerA")],
                false,
                PENDING,
            ),
            (
                "regular init container is succeeded, restartable init container is running, regular containers is stopped",
                vec![succeeded_state("containerX"), running_state("containerY")],
                vec![stopped_state("containerA")],
                false,
                RUNNING,
            ),
            (
                "regular init container is succeeded, restartable init container and regular containers are both running",
                vec![succeeded_state("containerX"), running_state("containerY")],
                vec![running_state("containerA")],
                false,
                RUNNING,
            ),
        ],
    );
}

#[test]
fn pod_phase_with_restart_never() {
    let p = pod(vec![], &["containerA", "containerB"], "Never");
    run_phase_cases(
        &p,
        vec![
            ("waiting", vec![], vec![], false, PENDING),
            (
                "all running with restart never",
                vec![],
                vec![running_state("containerA"), running_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "all succeeded with restart never",
                vec![],
                vec![succeeded_state("containerA"), succeeded_state("containerB")],
                false,
                SUCCEEDED,
            ),
            (
                "all failed with restart never",
                vec![],
                vec![failed_state("containerA"), failed_state("containerB")],
                false,
                FAILED,
            ),
            (
                "mixed state #1 with restart never",
                vec![],
                vec![running_state("containerA"), succeeded_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "mixed state #2 with restart never",
                vec![],
                vec![running_state("containerA")],
                false,
                PENDING,
            ),
            (
                "mixed state #3 with restart never",
                vec![],
                vec![running_state("containerA"), waiting_state("containerB")],
                false,
                PENDING,
            ),
        ],
    );
}

#[test]
fn pod_phase_with_restart_never_init_containers() {
    let p = pod(
        vec![container("containerX")],
        &["containerA", "containerB"],
        "Never",
    );
    run_phase_cases(
        &p,
        vec![
            ("empty, waiting", vec![], vec![], false, PENDING),
            (
                "init container running",
                vec![running_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container terminated non-zero",
                vec![failed_state("containerX")],
                vec![],
                false,
                FAILED,
            ),
            (
                "init container waiting, terminated zero",
                vec![waiting_state_with_last_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container waiting, terminated non-zero",
                vec![waiting_state_with_non_zero_termination("containerX")],
                vec![],
                false,
                FAILED,
            ),
            (
                "init container waiting, not terminated",
                vec![waiting_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "init container succeeded",
                vec![succeeded_state("containerX")],
                vec![running_state("containerA"), running_state("containerB")],
                false,
                RUNNING,
            ),
        ],
    );
}

#[test]
fn pod_phase_with_restart_never_restartable_init_containers() {
    let p = pod(
        vec![sidecar("containerX")],
        &["containerA", "containerB"],
        "Never",
    );
    let both_succeeded = || vec![succeeded_state("containerA"), succeeded_state("containerB")];
    run_phase_cases(
        &p,
        vec![
            ("empty, waiting", vec![], vec![], false, PENDING),
            (
                "restartable init container running",
                vec![running_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container stopped",
                vec![stopped_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container waiting, terminated zero",
                vec![waiting_state_with_last_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container waiting, terminated non-zero",
                vec![waiting_state_with_non_zero_termination("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container waiting, not terminated",
                vec![waiting_state("containerX")],
                vec![],
                false,
                PENDING,
            ),
            (
                "restartable init container started, one main container running",
                vec![started_state("containerX")],
                vec![running_state("containerA")],
                false,
                PENDING,
            ),
            (
                "restartable init container started, main containers succeeded",
                vec![started_state("containerX")],
                both_succeeded(),
                false,
                RUNNING,
            ),
            (
                "restartable init container running, main containers succeeded",
                vec![running_state("containerX")],
                both_succeeded(),
                false,
                RUNNING,
            ),
            (
                "all containers succeeded",
                vec![succeeded_state("containerX")],
                both_succeeded(),
                false,
                SUCCEEDED,
            ),
            (
                "restartable init container terminated non-zero, main containers succeeded",
                vec![failed_state("containerX")],
                both_succeeded(),
                false,
                SUCCEEDED,
            ),
            (
                "backoff crashloop restartable init container, main containers succeeded",
                vec![waiting_state_with_last_termination("containerX")],
                both_succeeded(),
                false,
                SUCCEEDED,
            ),
            (
                "backoff crashloop with non-zero restartable init container, main containers succeeded",
                vec![waiting_state_with_non_zero_termination("containerX")],
                both_succeeded(),
                false,
                SUCCEEDED,
            ),
        ],
    );
}

#[test]
fn pod_phase_with_restart_on_failure() {
    let p = pod(vec![], &["containerA", "containerB"], "OnFailure");
    run_phase_cases(
        &p,
        vec![
            ("waiting", vec![], vec![], false, PENDING),
            (
                "all running with restart onfailure",
                vec![],
                vec![running_state("containerA"), running_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "all succeeded with restart onfailure",
                vec![],
                vec![succeeded_state("containerA"), succeeded_state("containerB")],
                false,
                SUCCEEDED,
            ),
            (
                "all failed with restart onfailure",
                vec![],
                vec![failed_state("containerA"), failed_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "mixed state #1 with restart onfailure",
                vec![],
                vec![running_state("containerA"), succeeded_state("containerB")],
                false,
                RUNNING,
            ),
            (
                "mixed state #2 with restart onfailure",
                vec![],
                vec![running_state("containerA")],
                false,
                PENDING,
            ),
            (
                "mixed state #3 with restart onfailure",
                vec![],
                vec![running_state("containerA"), waiting_state("containerB")],
                false,
                PENDING,
            ),
            (
                "backoff crashloop container with restart onfailure",
                vec![],
                vec![
                    running_state("containerA"),
                    waiting_state_with_last_termination("containerB"),
                ],
                false,
                RUNNING,
            ),
        ],
    );
}

#[test]
fn pod_phase_without_spec_is_pending() {
    assert_eq!(get_phase(&Pod::default(), &[], &[], true), PENDING);
}

#[test]
fn next_phase_never_leaves_terminal() {
    let cases = [
        (PENDING, RUNNING, RUNNING),
        (RUNNING, PENDING, PENDING),
        (RUNNING, SUCCEEDED, SUCCEEDED),
        (RUNNING, FAILED, FAILED),
        (SUCCEEDED, RUNNING, SUCCEEDED),
        (SUCCEEDED, FAILED, SUCCEEDED),
        (FAILED, PENDING, FAILED),
        (FAILED, SUCCEEDED, FAILED),
        (FAILED, FAILED, FAILED),
        ("", PENDING, PENDING),
    ];
    for (old, new, want) in cases {
        assert_eq!(next_phase(old, new), want, "{old} -> {new}");
    }
}

#[test]
fn static_pod_detection() {
    let with = |v: Option<&str>| Pod {
        metadata: ObjectMeta {
            annotations: v
                .map(|v| BTreeMap::from([(CONFIG_SOURCE_ANNOTATION.to_string(), v.to_string())])),
            ..Default::default()
        },
        ..Default::default()
    };
    for (v, want) in [
        (Some("file"), true),
        (Some("http"), true),
        (Some("api"), false),
        (None, false),
    ] {
        assert_eq!(is_static_pod(&with(v)), want, "{v:?}");
    }
}

// ---- conditions ----

/// (name, spec, init statuses, statuses, phase, expected condition)
type ConditionCase = (
    &'static str,
    PodSpec,
    Vec<ContainerStatus>,
    Vec<ContainerStatus>,
    &'static str,
    PodCondition,
);

fn cond(type_: &str, ok: bool, reason: &str, message: &str) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { TRUE } else { FALSE }.into(),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        message: (!message.is_empty()).then(|| message.to_string()),
        ..Default::default()
    }
}
fn spec_pod(spec: PodSpec) -> Pod {
    Pod {
        spec: Some(spec),
        ..Default::default()
    }
}
fn named(names: &[&str]) -> Vec<Container> {
    names.iter().map(|n| container(n)).collect()
}

#[test]
fn generate_pod_ready_condition() {
    // generate_test.go TestGeneratePodReadyCondition (minus the nil-statuses case, see
    // UNKNOWN_CONTAINER_STATUSES), plus sidecars and readiness gates.
    let cases: Vec<ConditionCase> = vec![
        (
            "no containers",
            PodSpec::default(),
            vec![],
            vec![],
            RUNNING,
            cond(READY, true, "", ""),
        ),
        (
            "unknown status",
            PodSpec {
                containers: named(&["1234"]),
                ..Default::default()
            },
            vec![],
            vec![],
            RUNNING,
            cond(
                READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unknown status: [1234]",
            ),
        ),
        (
            "all ready",
            PodSpec {
                containers: named(&["1234", "5678"]),
                ..Default::default()
            },
            vec![],
            vec![ready(no_state("1234")), ready(no_state("5678"))],
            RUNNING,
            cond(READY, true, "", ""),
        ),
        (
            "one unknown",
            PodSpec {
                containers: named(&["1234", "5678"]),
                ..Default::default()
            },
            vec![],
            vec![ready(no_state("1234"))],
            RUNNING,
            cond(
                READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unknown status: [5678]",
            ),
        ),
        (
            "one unready",
            PodSpec {
                containers: named(&["1234", "5678"]),
                ..Default::default()
            },
            vec![],
            vec![ready(no_state("1234")), no_state("5678")],
            RUNNING,
            cond(
                READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unready status: [5678]",
            ),
        ),
        (
            "unknown and unready",
            PodSpec {
                containers: named(&["a", "b", "c"]),
                ..Default::default()
            },
            vec![],
            vec![no_state("b")],
            RUNNING,
            cond(
                READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unknown status: [a c], containers with unready status: [b]",
            ),
        ),
        (
            "succeeded",
            PodSpec {
                containers: named(&["1234"]),
                ..Default::default()
            },
            vec![],
            vec![no_state("1234")],
            SUCCEEDED,
            cond(READY, false, POD_COMPLETED, ""),
        ),
        (
            "succeeded with unknown container is not completed",
            PodSpec {
                containers: named(&["1234"]),
                ..Default::default()
            },
            vec![],
            vec![],
            SUCCEEDED,
            cond(
                READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unknown status: [1234]",
            ),
        ),
        (
            "failed even when ready",
            PodSpec {
                containers: named(&["1234"]),
                ..Default::default()
            },
            vec![],
            vec![ready(no_state("1234"))],
            FAILED,
            cond(READY, false, POD_FAILED, ""),
        ),
        (
            "unready sidecar counts, regular init does not",
            PodSpec {
                init_containers: Some(vec![container("init"), sidecar("side")]),
                containers: named(&["main"]),
                ..Default::default()
            },
            vec![no_state("init"), no_state("side")],
            vec![ready(no_state("main"))],
            RUNNING,
            cond(
                READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unready status: [side]",
            ),
        ),
        (
            "readiness gate missing",
            PodSpec {
                containers: named(&["a"]),
                readiness_gates: Some(vec![PodReadinessGate {
                    condition_type: "example.com/lb".into(),
                }]),
                ..Default::default()
            },
            vec![],
            vec![ready(no_state("a"))],
            RUNNING,
            cond(
                READY,
                false,
                READINESS_GATES_NOT_READY,
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist.",
            ),
        ),
    ];
    for (name, spec, init, regular, phase, want) in cases {
        let p = spec_pod(spec);
        let got = pod_ready_condition(&p, &[], &init, &regular, phase);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn readiness_gate_not_true() {
    let p = spec_pod(PodSpec {
        containers: named(&["a"]),
        readiness_gates: Some(vec![PodReadinessGate {
            condition_type: "x".into(),
        }]),
        ..Default::default()
    });
    let st = [ready(no_state("a"))];
    let gate_false = [cond("x", false, "", "")];
    assert_eq!(
        pod_ready_condition(&p, &gate_false, &[], &st, RUNNING),
        cond(
            READY,
            false,
            READINESS_GATES_NOT_READY,
            "the status of pod readiness gate \"x\" is not \"True\", but False"
        )
    );
    let gate_true = [cond("x", true, "", "")];
    assert_eq!(
        pod_ready_condition(&p, &gate_true, &[], &st, RUNNING),
        cond(READY, true, "", "")
    );
}

#[test]
fn generate_containers_ready_condition() {
    let cases: Vec<ConditionCase> = vec![
        (
            "all ready",
            PodSpec {
                containers: named(&["a", "b"]),
                ..Default::default()
            },
            vec![],
            vec![ready(running_state("a")), ready(running_state("b"))],
            RUNNING,
            cond(CONTAINERS_READY, true, "", ""),
        ),
        (
            "unready in spec order",
            PodSpec {
                containers: named(&["b", "a"]),
                ..Default::default()
            },
            vec![],
            vec![running_state("a"), running_state("b")],
            RUNNING,
            cond(
                CONTAINERS_READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unready status: [b a]",
            ),
        ),
        (
            "sidecar unknown",
            PodSpec {
                init_containers: Some(vec![sidecar("s")]),
                containers: named(&["a"]),
                ..Default::default()
            },
            vec![],
            vec![ready(running_state("a"))],
            RUNNING,
            cond(
                CONTAINERS_READY,
                false,
                CONTAINERS_NOT_READY,
                "containers with unknown status: [s]",
            ),
        ),
        (
            "succeeded",
            PodSpec {
                containers: named(&["a"]),
                ..Default::default()
            },
            vec![],
            vec![succeeded_state("a")],
            SUCCEEDED,
            cond(CONTAINERS_READY, false, POD_COMPLETED, ""),
        ),
        (
            "failed",
            PodSpec {
                containers: named(&["a"]),
                ..Default::default()
            },
            vec![],
            vec![failed_state("a")],
            FAILED,
            cond(CONTAINERS_READY, false, POD_FAILED, ""),
        ),
    ];
    for (name, spec, init, regular, phase, want) in cases {
        let got = containers_ready_condition(&spec_pod(spec), &init, &regular, phase);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn generate_pod_initialized_condition() {
    let spec = |init: Vec<Container>| PodSpec {
        init_containers: Some(init),
        containers: named(&["regular"]),
        ..Default::default()
    };
    let cases: Vec<ConditionCase> = vec![
        (
            "no init containers",
            PodSpec {
                containers: named(&["regular"]),
                ..Default::default()
            },
            vec![],
            vec![waiting_state("regular")],
            PENDING,
            cond(INITIALIZED, true, "", ""),
        ),
        (
            "init containers unknown",
            spec(vec![container("a"), container("b")]),
            vec![],
            vec![],
            PENDING,
            cond(
                INITIALIZED,
                false,
                CONTAINERS_NOT_INITIALIZED,
                "containers with unknown status: [a b]",
            ),
        ),
        (
            "init containers incomplete",
            spec(vec![container("a"), container("b")]),
            vec![ready(succeeded_state("a")), running_state("b")],
            vec![waiting_state("regular")],
            PENDING,
            cond(
                INITIALIZED,
                false,
                CONTAINERS_NOT_INITIALIZED,
                "containers with incomplete status: [b]",
            ),
        ),
        (
            "unknown and incomplete",
            spec(vec![container("a"), container("b")]),
            vec![running_state("a")],
            vec![waiting_state("regular")],
            PENDING,
            cond(
                INITIALIZED,
                false,
                CONTAINERS_NOT_INITIALIZED,
                "containers with unknown status: [b], containers with incomplete status: [a]",
            ),
        ),
        (
            "all init containers completed",
            spec(vec![container("a"), container("b")]),
            vec![ready(succeeded_state("a")), ready(succeeded_state("b"))],
            vec![waiting_state("regular")],
            PENDING,
            cond(INITIALIZED, true, "", ""),
        ),
        (
            "sidecar started counts as initialized even when unready",
            spec(vec![sidecar("s")]),
            vec![started_state("s")],
            vec![waiting_state("regular")],
            PENDING,
            cond(INITIALIZED, true, "", ""),
        ),
        (
            "sidecar running but not started",
            spec(vec![sidecar("s")]),
            vec![running_state("s")],
            vec![waiting_state("regular")],
            PENDING,
            cond(
                INITIALIZED,
                false,
                CONTAINERS_NOT_INITIALIZED,
                "containers with incomplete status: [s]",
            ),
        ),
        (
            "restarting sidecar after regular container started stays initialized",
            spec(vec![sidecar("s")]),
            vec![waiting_state_with_non_zero_termination("s")],
            vec![running_state("regular")],
            RUNNING,
            cond(INITIALIZED, true, "", ""),
        ),
        (
            "succeeded pod is completed",
            spec(vec![container("a")]),
            vec![failed_state("a")],
            vec![succeeded_state("regular")],
            SUCCEEDED,
            cond(INITIALIZED, true, POD_COMPLETED, ""),
        ),
    ];
    for (name, spec, init, regular, phase, want) in cases {
        let got = pod_initialized_condition(&spec_pod(spec), &init, &regular, phase);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn pod_ready_to_start_containers_follows_sandbox() {
    let p = Pod::default();
    assert_eq!(
        pod_ready_to_start_containers_condition(&p, true),
        cond(POD_READY_TO_START_CONTAINERS, true, "", "")
    );
    assert_eq!(
        pod_ready_to_start_containers_condition(&p, false),
        cond(POD_READY_TO_START_CONTAINERS, false, "", "")
    );
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

#[test]
fn generate_conditions_order_and_transition_times() {
    let p = spec_pod(PodSpec {
        containers: named(&["a"]),
        ..Default::default()
    });
    let t0 = ts(1_000);
    let t1 = ts(2_000);
    let t2 = ts(3_000);

    // First status: not ready yet, everything transitions at t0.
    let first = generate_conditions(&p, &[], &[running_state("a")], RUNNING, true, None, t0);
    let types: Vec<&str> = first.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            POD_READY_TO_START_CONTAINERS,
            INITIALIZED,
            READY,
            CONTAINERS_READY,
            POD_SCHEDULED
        ]
    );
    assert!(
        first
            .iter()
            .all(|c| c.last_transition_time == Some(Time(t0)))
    );
    assert_eq!(first[2].status, FALSE);
    assert_eq!(
        first[2].message.as_deref(),
        Some("containers with unready status: [a]")
    );
    assert_eq!(first[4].status, TRUE);

    // Container becomes ready at t1: only Ready and ContainersReady move.
    let old = PodStatus {
        conditions: Some(first),
        ..Default::default()
    };
    let second = generate_conditions(
        &p,
        &[],
        &[ready(running_state("a"))],
        RUNNING,
        true,
        Some(&old),
        t1,
    );
    let times: Vec<(&str, &str, Timestamp)> = second
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.last_transition_time.clone().unwrap().0,
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            (POD_READY_TO_START_CONTAINERS, TRUE, t0),
            (INITIALIZED, TRUE, t0),
            (READY, TRUE, t1),
            (CONTAINERS_READY, TRUE, t1),
            (POD_SCHEDULED, TRUE, t0),
        ]
    );

    // Same statuses again at t2: nothing moves.
    let old2 = PodStatus {
        conditions: Some(second.clone()),
        ..Default::default()
    };
    let third = generate_conditions(
        &p,
        &[],
        &[ready(running_state("a"))],
        RUNNING,
        true,
        Some(&old2),
        t2,
    );
    assert_eq!(third, second);
}

#[test]
fn generate_conditions_keeps_disruption_target_and_generation() {
    let mut p = spec_pod(PodSpec {
        containers: named(&["a"]),
        ..Default::default()
    });
    p.metadata.generation = Some(3);
    let dt = PodCondition {
        type_: DISRUPTION_TARGET.into(),
        status: TRUE.into(),
        reason: Some("TerminationByKubelet".into()),
        message: Some("The node was low on resource: memory.".into()),
        last_transition_time: Some(Time(ts(5))),
        ..Default::default()
    };
    let old = PodStatus {
        conditions: Some(vec![cond("Other", true, "", ""), dt.clone()]),
        ..Default::default()
    };
    let got = generate_conditions(
        &p,
        &[],
        &[failed_state("a")],
        FAILED,
        false,
        Some(&old),
        ts(10),
    );
    assert_eq!(got[0], dt);
    assert_eq!(
        got.len(),
        6,
        "non-kubelet conditions other than DisruptionTarget are dropped"
    );
    assert!(got[1..].iter().all(|c| c.observed_generation == Some(3)));
    assert_eq!(
        got[1],
        PodCondition {
            observed_generation: Some(3),
            last_transition_time: Some(Time(ts(10))),
            ..cond(POD_READY_TO_START_CONTAINERS, false, "", "")
        }
    );
    assert_eq!(got[3].reason.as_deref(), Some(POD_FAILED));
}
