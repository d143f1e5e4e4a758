mod common;
use std::process::Command;
use std::time::Duration;
#[test]
fn scratch() {
    let a = common::Agent::start(&[]);
    a.write_manifest("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: main, image: debian, command: [sh, -c, 'echo hi; exec sleep 3600']}\n  - {name: side, image: debian, command: [sh, -c, 'echo side; exec sleep 3600']}\n");
    a.write_manifest("sys.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: sys, namespace: kube-system}\nspec:\n  initContainers:\n  - {name: init, image: debian, command: [sh, -c, 'sleep 30']}\n  containers:\n  - {name: main, image: debian, command: [sh, -c, 'exit 3']}\n");
    std::thread::sleep(Duration::from_secs(3));
    let home = tempfile::tempdir().unwrap();
    let server = format!("--server=http://127.0.0.1:{}", a.port);
    let run = |bin: &str, args: &[&str]| {
        let o = Command::new(bin)
            .env("HOME", home.path())
            .arg(&server)
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "$ kubectl {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let k = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
    run("/usr/bin/kubectl", &["version"]);
    run(k, &["logs", "web-vm", "--all-containers", "--prefix"]);
    run(k, &["logs", "-n", "kube-system", "sys-vm"]);
    run(k, &["logs", "-n", "kube-system", "sys-vm", "-c", "init"]);
    run(k, &["get", "all", "-A"]);
    run(k, &["api-resources"]);
    run(
        k,
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            "involvedObject.kind=Node",
        ],
    );
    run(k, &["get", "events", "-o", "wide"]);
    run(k, &["get", "--raw", "/healthz"]);
    run(k, &["get", "pods", "--chunk-size=1", "-A"]);
    run(k, &["get", "pod", "web-vm", "-o", "name"]);
    run(
        k,
        &[
            "get",
            "pod",
            "web-vm",
            "-o",
            "custom-columns=N:.metadata.name,IP:.status.podIP",
        ],
    );
    run(k, &["get", "pods", "--sort-by=.metadata.name", "-A"]);
    run(k, &["top", "pod", "-A"]);
    run(k, &["get", "pods", "-l", "bad selector ("]);
    run(k, &["cluster-info"]);
    let mut w = Command::new(k)
        .env("HOME", home.path())
        .arg(&server)
        .args(["get", "pods", "-A", "-w", "-o", "wide"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut e = Command::new(k)
        .env("HOME", home.path())
        .arg(&server)
        .args(["get", "events", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    a.write_manifest("two.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers:\n  - {name: main, image: debian, command: [sleep, '3600']}\n");
    std::thread::sleep(Duration::from_secs(3));
    w.kill().unwrap();
    e.kill().unwrap();
    let o = w.wait_with_output().unwrap();
    eprintln!(
        "$ kubectl get pods -A -w -o wide\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = e.wait_with_output().unwrap();
    eprintln!(
        "$ kubectl get events -w\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
