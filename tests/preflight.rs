//! Preflight with the real binary: swap refusal (a fake `/proc/swaps` bind-mounted in a private
//! mount namespace that only the agent sees), `minikubelet check`, configuration errors.

mod common;

use std::process::Command;

use common::Agent;

const FAKE_SWAPS: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n";

/// `unshare -m --propagation private sh -c 'mount --bind FAKE /proc/swaps && exec "$@"' sh`
fn with_fake_swaps(fake: &std::path::Path) -> Vec<String> {
    vec![
        "unshare".into(),
        "-m".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        format!("mount --bind {} /proc/swaps && exec \"$@\"", fake.display()),
        "sh".into(),
    ]
}

#[test]
fn swap_on_refuses_to_start_with_the_kubelets_message() {
    let a = Agent::start_unspawned(&[]);
    let fake = a.tmp.path().join("swaps");
    std::fs::write(&fake, FAKE_SWAPS).unwrap();
    let mut argv = with_fake_swaps(&fake);
    argv.extend(a.argv());
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with swap on: {err}");
    assert!(
        err.contains("failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false"),
        "{err}"
    );
    // `check` reports the same, with the fix, and exits 1.
    let mut argv = with_fake_swaps(&fake);
    argv.extend([
        env!("CARGO_BIN_EXE_minikubelet").to_string(),
        "check".into(),
    ]);
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[FAIL] swap") && text.contains("swapoff -a"),
        "{text}"
    );
}

#[test]
fn swap_on_is_allowed_with_fail_swap_on_false() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("swaps");
    std::fs::write(&fake, FAKE_SWAPS).unwrap();
    let wrapper = with_fake_swaps(&fake);
    let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let a = Agent::start_wrapped(&w, &["--fail-swap-on=false"]);
    assert!(a.log_contains("swap is on and failSwapOn is false"));
}

#[test]
fn check_prints_a_report() {
    let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cgroup layout"), "{text}");
    assert!(text.contains("pidfd"), "{text}");
    assert!(text.contains("kill method"), "{text}");
    // The swap line says what this machine's /proc/swaps says. (Not switched on here to test
    // the other branch: every agent on the machine would then refuse to start; the fake
    // /proc/swaps tests above cover it, and the VM tests a real swap file.)
    if real_swap_on() {
        assert!(
            text.contains("[FAIL] swap: ") && text.contains("swapoff -a"),
            "swap is on: {text}"
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
    } else {
        assert!(text.contains("[ok  ] swap: off"), "swap is off: {text}");
        assert!(!text.contains("[FAIL] swap"), "{text}");
    }
}

/// Whether this machine has swap on: /proc/swaps lists a device or file under its header.
fn real_swap_on() -> bool {
    let swaps = std::fs::read_to_string("/proc/swaps").expect("read /proc/swaps");
    let mut lines = swaps.lines();
    assert!(
        lines.next().is_some_and(|h| h.starts_with("Filename")),
        "/proc/swaps without its header: {swaps:?}"
    );
    lines.any(|l| !l.trim().is_empty())
}

#[test]
fn config_file_unknown_field_warns_and_bad_value_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .arg(format!("--config={}", cfg.display()))
        .arg("--port=1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cgroupDriver") && err.contains("cgroupfs"),
        "{err}"
    );

    let a = Agent::start(&[]);
    drop(a);
    std::fs::write(
        &cfg,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nrunOnce: true\nmaxPodz: 3\n",
    )
    .unwrap();
    let flag = format!("--config={}", cfg.display());
    let a = Agent::start(&[&flag]);
    assert!(a.log_contains("maxPodz"), "unknown field not named");
    assert!(
        a.log_contains("runOnce"),
        "unimplemented kubelet field not named"
    );
}

#[test]
fn non_loopback_address_without_tls_or_authentication_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let cert = tmp.path().join("kubelet.crt");
    let key = tmp.path().join("kubelet.key");
    let k = rcgen::KeyPair::generate().unwrap();
    let c = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&k)
        .unwrap();
    std::fs::write(&cert, c.pem()).unwrap();
    std::fs::write(&key, k.serialize_pem()).unwrap();
    let tls = [
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
    ];
    let missing = tmp.path().join("missing.csv");
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        // No TLS: the message names the flags and the loopback way out.
        (
            vec![],
            &[
                "refusing to listen on",
                "without TLS",
                "--tls-cert-file",
                "--client-ca-file",
                "--address=127.0.0.1",
            ],
        ),
        // TLS but nobody to authenticate against.
        (
            tls.to_vec(),
            &[
                "without authentication",
                "--client-ca-file",
                "--token-auth-file",
                "--anonymous-auth=true",
            ],
        ),
        // An unreadable token file is named.
        (
            [
                tls.to_vec(),
                vec![format!("--token-auth-file={}", missing.display())],
            ]
            .concat(),
            &["--token-auth-file", "missing.csv"],
        ),
    ];
    for addr in ["0.0.0.0", "::"] {
        for (flags, want) in &cases {
            let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
                .arg(format!("--address={addr}"))
                .arg(format!("--root-dir={}", root.display()))
                .arg("--port=1")
                .args(flags)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{addr} {flags:?}: started");
            for w in *want {
                assert!(err.contains(w), "{addr} {flags:?}: {w:?} not in {err}");
            }
        }
    }
    // Refused before anything was touched: not even the root dir exists.
    assert!(!root.exists());
    // `minikubelet check` says the same.
    let out = Command::new(env!("CARGO_BIN_EXE_minikubelet"))
        .args(["check", "--address=0.0.0.0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[FAIL] kubelet API: refusing to listen on 0.0.0.0 without TLS"),
        "{text}"
    );
}

#[test]
fn check_into_a_closed_pipe_does_not_panic() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} check | head -1",
            env!("CARGO_BIN_EXE_minikubelet")
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
