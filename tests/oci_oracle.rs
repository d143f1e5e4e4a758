//! runc as the oracle: the same bundle (the same `config.json`, the same busybox layers) runs
//! under Debian's `runc run` and under minikubelet's shim, and what the process sees must
//! match: its mounts (normalized: mount point, filesystem, per-mount options), capability
//! sets, `NoNewPrivs`, `Seccomp`, ids, which namespaces are new and which the node's, and
//! `/dev`. The differences that remain on purpose are listed in [`KNOWN_DIFFERENCES`] and in
//! docs/isolation.md.
//!
//! runc runs inside `unshare -m` (its rootfs overlay is mounted in that private mount namespace,
//! so nothing is left on the node); its state goes to a temp `--root`; a guard runs
//! `runc delete --force` (which also removes its cgroups) if the test fails while it runs.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use minikubelet::runtime::spec::{self, SandboxPaths};

mod common;
use common::isolated::*;

/// Debian's runc (`scripts/deps.sh` installs it).
const RUNC: &str = "/usr/sbin/runc";

/// What the process reports: namespaces as new/host, status lines, mounts and /dev.
const REPORT: &str = r#"
for ns in mnt pid net ipc uts cgroup; do echo "ns $ns $(readlink /proc/self/ns/$ns)"; done
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Uid|Gid|Groups):' /proc/self/status | tr -s '\t ' ' ' | sed 's/^/status /'
echo "pid $$"
echo "hostname $(hostname)"
cat /proc/self/mountinfo | sed 's/^/mountinfo /'
ls -1 /dev | sed 's/^/dev /'
"#;

/// Mount points where minikubelet differs from runc on purpose (see docs/isolation.md): runc
/// builds `/sys/fs/cgroup` from a tmpfs and one bind per v1 controller of the container's own
/// cgroup; minikubelet binds the node's cgroup tree read-only.
const KNOWN_DIFFERENCES: [&str; 1] = ["/sys/fs/cgroup"];

/// The report, normalized: namespaces as "new"/"host" against the test's own, mounts as
/// `point fstype per-mount-options` (ids, devices, sources and superblock options dropped).
fn normalize(out: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for line in out.lines() {
        let Some((kind, rest)) = line.split_once(' ') else {
            continue;
        };
        match kind {
            "ns" => {
                let (ns, link) = rest.split_once(' ').unwrap();
                let host = std::fs::read_link(format!("/proc/self/ns/{ns}"))
                    .unwrap()
                    .display()
                    .to_string();
                let which = if link == host { "host" } else { "new" };
                set.insert(format!("ns {ns} {which}"));
            }
            "mountinfo" => {
                let fields: Vec<&str> = rest.split(' ').collect();
                let point = fields[4];
                if KNOWN_DIFFERENCES.iter().any(|k| point.starts_with(k)) {
                    continue;
                }
                let dash = fields.iter().position(|f| *f == "-").unwrap();
                set.insert(format!("mount {point} {} {}", fields[dash + 1], fields[5]));
            }
            "status" | "pid" | "hostname" | "dev" => {
                set.insert(line.to_string());
            }
            _ => {}
        }
    }
    set
}

/// Deletes runc's container (and its cgroups) if it is still there.
struct RuncGuard<'a> {
    root: &'a Path,
    id: &'a str,
}

impl Drop for RuncGuard<'_> {
    fn drop(&mut self) {
        let _ = Command::new(RUNC)
            .arg("--root")
            .arg(self.root)
            .args(["delete", "--force", self.id])
            .output();
    }
}

#[test]
fn runc_and_the_shim_give_the_process_the_same_view() {
    let layers = Layers::new();
    let spec = spec::container_spec(&process(REPORT), &SandboxPaths::host(), &[]);
    compare(&layers, spec);
}

#[test]
fn same_view_with_a_user_pod_namespaces_and_no_new_privileges() {
    let layers = Layers::new();
    let holder = Holder::new();
    let mut p = process(REPORT);
    p.uid = Some(1000);
    p.gid = Some(1001);
    p.supplemental_groups = vec![2000];
    p.no_new_privileges = true;
    let sandbox = SandboxPaths {
        uts: Some(holder.ns("uts")),
        ipc: Some(holder.ns("ipc")),
        hostname: Some("oracle-pod".into()),
        ..Default::default()
    };
    let spec = spec::container_spec(&p, &sandbox, &[]);
    compare(&layers, spec);
}

/// A security context as `spec::apply_security` writes it (capabilities dropped and added, no
/// new privileges, a read-only root, the RuntimeDefault seccomp filter): runc and the shim
/// apply it alike (`Seccomp: 2` under both).
#[test]
fn same_view_with_a_security_context() {
    let layers = Layers::new();
    let mut spec = spec::container_spec(&process(REPORT), &SandboxPaths::host(), &[]);
    let sc = spec::LinuxContainerSecurityContext {
        add_capabilities: vec!["NET_ADMIN".into(), "sys_time".into()],
        drop_capabilities: vec!["ALL".into()],
        no_new_privs: true,
        readonly_rootfs: true,
        seccomp: spec::SeccompProfile::RuntimeDefault,
        ..Default::default()
    };
    spec::apply_security(&mut spec, &sc, spec::current_bounding_set()).unwrap();
    compare(&layers, spec);
}

/// A privileged container's spec (every capability the caller has, no masked or read-only
/// paths, `/sys` writable): the same view under runc and the shim.
#[test]
fn same_view_when_privileged() {
    let layers = Layers::new();
    let mut spec = spec::container_spec(&process(REPORT), &SandboxPaths::host(), &[]);
    let sc = spec::LinuxContainerSecurityContext {
        privileged: true,
        ..Default::default()
    };
    spec::apply_security(&mut spec, &sc, spec::current_bounding_set()).unwrap();
    compare(&layers, spec);
}

/// Runs `spec` on `layers` under runc and under the shim and compares the reports.
fn compare(layers: &Layers, spec: minikubelet::runtime::oci::Spec) {
    assert!(
        Path::new(RUNC).exists(),
        "{RUNC} missing: scripts/deps.sh installs Debian's runc"
    );

    // runc: the bundle's rootfs is the same layers with an upper layer of its own.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    let (upper, work, state) = (
        dir.path().join("upper"),
        dir.path().join("work"),
        dir.path().join("runc-state"),
    );
    for d in [&rootfs, &upper, &work, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    let lower: Vec<String> = layers
        .lower
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let id = format!("mkl-oracle-{}", std::process::id());
    let _guard = RuncGuard {
        root: &state,
        id: &id,
    };
    let script = format!(
        "mount -t overlay overlay -o {options} {rootfs} && exec {RUNC} --root {state} run --bundle {bundle} {id}",
        rootfs = rootfs.display(),
        state = state.display(),
        bundle = bundle.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare(1)");
    let runc_out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "runc run failed: {}\n{runc_out}",
        String::from_utf8_lossy(&out.stderr)
    );

    // minikubelet: the same spec and layers through the real shim.
    let ours = run(isolation(spec, layers.rootfs()));

    let (theirs, ours_n) = (normalize(&runc_out), normalize(&ours));
    assert!(theirs.len() > 20, "runc's report is too short:\n{runc_out}");
    let only_runc: Vec<&String> = theirs.difference(&ours_n).collect();
    let only_ours: Vec<&String> = ours_n.difference(&theirs).collect();
    assert!(
        only_runc.is_empty() && only_ours.is_empty(),
        "only under runc:\n  {}\nonly under minikubelet:\n  {}",
        only_runc
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        only_ours
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
