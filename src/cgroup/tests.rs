//! Unit tests against a fake tree in a temp dir: a fake `/proc/self/{mountinfo,cgroup}` and a
//! fake `/sys/fs/cgroup` whose files the tests create where the kernel would.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// This machine: cpu and cpuacct mounted apart, memory own cgroup `/process_api/abc`.
    V1Split,
    /// `cpu,cpuacct` co-mounted, no freezer mounted.
    V1Comounted,
    /// V1Split plus an empty cgroup2 at `unified`.
    Hybrid,
    /// Unified; own cgroup `/agent.service`.
    V2,
}

struct Fake {
    _tmp: tempfile::TempDir,
    proc_root: PathBuf,
    sys_root: PathBuf,
    cg: PathBuf,
}

const V2_OWN: &str = "agent.service";

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A cgroup directory with the given files, as the kernel would show them.
fn cgdir(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (f, c) in files {
        write(&dir.join(f), c);
    }
}

const V2_DIR_FILES: [(&str, &str); 3] = [
    ("cgroup.controllers", "cpuset cpu io memory pids"),
    ("cgroup.subtree_control", ""),
    ("cgroup.procs", ""),
];

impl Fake {
    fn new(kind: Kind) -> Fake {
        Self::with_tables(kind, None)
    }

    /// `cgroup_file` overrides the generated `/proc/self/cgroup`.
    fn with_tables(kind: Kind, cgroup_file: Option<&str>) -> Fake {
        let tmp = tempfile::tempdir().unwrap();
        let proc_root = tmp.path().join("proc");
        let sys_root = tmp.path().join("sys");
        let cg = sys_root.join("fs/cgroup");
        fs::create_dir_all(&cg).unwrap();
        let c = cg.display();
        let mut mi = vec!["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw".to_string()];
        let mut cgf = Vec::new();
        let mut own_dirs = Vec::new();
        if kind == Kind::V2 {
            mi.push(format!(
                "31 22 0:28 / {c} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate"
            ));
            cgf.push(format!("0::/{V2_OWN}"));
            own_dirs.push(cg.join(V2_OWN));
        } else {
            mi.push(format!(
                "31 22 0:27 / {c} rw,relatime - tmpfs tmpfs rw,mode=755"
            ));
            let mounts: &[(&str, &str)] = if kind == Kind::V1Comounted {
                &[
                    ("cpu,cpuacct", "/kubelet.service"),
                    ("memory", "/kubelet.service"),
                    ("pids", "/"),
                ]
            } else {
                &[
                    ("cpu", "/"),
                    ("cpuacct", "/"),
                    ("cpuset", "/"),
                    ("memory", "/process_api/abc"),
                    ("devices", "/"),
                    ("freezer", "/"),
                    ("pids", "/"),
                    ("name=systemd", "/"),
                ]
            };
            for (i, (ctrls, own)) in mounts.iter().enumerate() {
                let dir = cg.join(ctrls.trim_start_matches("name="));
                mi.push(format!(
                    "{} 31 0:{} / {} rw,relatime - cgroup cgroup rw,{ctrls}",
                    32 + i,
                    28 + i,
                    dir.display()
                ));
                cgf.push(format!("{}:{ctrls}:{own}", mounts.len() - i));
                own_dirs.push(dir.join(own.trim_start_matches('/')));
            }
            if kind == Kind::Hybrid {
                mi.push(format!(
                    "41 31 0:38 / {c}/unified rw,relatime - cgroup2 cgroup2 rw"
                ));
                cgf.push("0::/".to_string());
                own_dirs.push(cg.join("unified"));
            }
        }
        for d in own_dirs {
            fs::create_dir_all(d).unwrap();
        }
        write(&proc_root.join("self/mountinfo"), &(mi.join("\n") + "\n"));
        let cgf = cgroup_file.map_or_else(|| cgf.join("\n") + "\n", str::to_string);
        write(&proc_root.join("self/cgroup"), &cgf);
        Fake {
            _tmp: tmp,
            proc_root,
            sys_root,
            cg,
        }
    }

    fn hint(kind: Kind) -> RootFs {
        if kind == Kind::V2 {
            RootFs::Cgroup2
        } else {
            RootFs::Other
        }
    }

    fn detect(&self, kind: Kind) -> Result<CgroupFs, Error> {
        CgroupFs::detect_with_hint(&self.proc_root, &self.sys_root, Self::hint(kind))
    }
}

fn name(comps: &[&str]) -> CgroupName {
    CgroupName::new(comps.iter().copied()).unwrap()
}

#[test]
fn detects_layouts_and_own_cgroups() {
    struct Case {
        kind: Kind,
        layout: Layout,
        hierarchies: usize,
        own: &'static [(Controller, &'static str)],
        unified: Option<&'static str>,
    }
    let cases = [
        Case {
            kind: Kind::V1Split,
            layout: Layout::V1,
            hierarchies: 6,
            own: &[
                (Controller::Cpu, "cpu"),
                (Controller::Cpuacct, "cpuacct"),
                (Controller::Memory, "memory/process_api/abc"),
                (Controller::Pids, "pids"),
                (Controller::Freezer, "freezer"),
                (Controller::Devices, "devices"),
            ],
            unified: None,
        },
        Case {
            kind: Kind::V1Comounted,
            layout: Layout::V1,
            hierarchies: 3,
            own: &[
                (Controller::Cpu, "cpu,cpuacct/kubelet.service"),
                (Controller::Cpuacct, "cpu,cpuacct/kubelet.service"),
                (Controller::Memory, "memory/kubelet.service"),
                (Controller::Pids, "pids"),
            ],
            unified: None,
        },
        Case {
            kind: Kind::Hybrid,
            layout: Layout::Hybrid,
            hierarchies: 6,
            own: &[
                (Controller::Cpu, "cpu"),
                (Controller::Memory, "memory/process_api/abc"),
            ],
            unified: Some("unified"),
        },
        Case {
            kind: Kind::V2,
            layout: Layout::V2,
            hierarchies: 1,
            own: &[
                (Controller::Cpu, V2_OWN),
                (Controller::Cpuacct, V2_OWN),
                (Controller::Memory, V2_OWN),
                (Controller::Pids, V2_OWN),
                (Controller::Freezer, V2_OWN),
            ],
            unified: None,
        },
    ];
    for case in cases {
        let fake = Fake::new(case.kind);
        let fs = fake.detect(case.kind).unwrap();
        assert_eq!(fs.layout(), case.layout, "{:?}", case.kind);
        assert_eq!(fs.hierarchies.len(), case.hierarchies, "{:?}", case.kind);
        for (c, own) in case.own {
            assert_eq!(
                fs.own_path(*c),
                Some(fake.cg.join(own)),
                "{:?} {c}",
                case.kind
            );
            // Before with_root the root is the mount point (the kubelet's default "/").
            assert!(fs.root_path(*c).unwrap().parent().is_some());
        }
        assert_eq!(
            fs.features().unified_mount,
            case.unified.map(|u| fake.cg.join(u))
        );
    }
}

#[test]
fn comounted_cpu_cpuacct_share_a_directory_and_freezer_is_missing() {
    let fake = Fake::new(Kind::V1Comounted);
    let fs = fake.detect(Kind::V1Comounted).unwrap();
    let n = name(&["kubepods"]);
    assert_eq!(
        fs.path(Controller::Cpu, &n),
        fs.path(Controller::Cpuacct, &n)
    );
    assert_eq!(fs.path(Controller::Freezer, &n), None);
    assert!(matches!(
        fs.freeze(&n, true),
        Err(Error::ControllerMissing(Controller::Freezer))
    ));
    assert_eq!(
        fs.features().missing_controllers,
        vec![Controller::Freezer, Controller::Devices]
    );
    // create makes one directory per hierarchy (3), not one per controller.
    fs.create(&n).unwrap();
    assert_eq!(fs.procs_files(&n).len(), 3);
}

#[test]
fn mount_root_other_than_slash() {
    let tmp = tempfile::tempdir().unwrap();
    let cg = tmp.path().join("sys/fs/cgroup");
    let mi = format!(
        "35 31 0:32 /docker/abc {}/memory rw,relatime - cgroup cgroup rw,memory\n",
        cg.display()
    );
    write(&tmp.path().join("proc/self/mountinfo"), &mi);
    struct Case {
        own: &'static str,
        want: Option<&'static str>,
    }
    let cases = [
        Case {
            own: "/docker/abc/sub",
            want: Some("memory/sub"),
        },
        Case {
            own: "/docker/abc",
            want: Some("memory"),
        },
        Case {
            own: "/docker/abcd",
            want: None,
        },
        Case {
            own: "/other",
            want: None,
        },
    ];
    for case in cases {
        write(
            &tmp.path().join("proc/self/cgroup"),
            &format!("4:memory:{}\n", case.own),
        );
        let got = CgroupFs::detect_with_hint(
            &tmp.path().join("proc"),
            &tmp.path().join("sys"),
            RootFs::Other,
        );
        match case.want {
            Some(w) => assert_eq!(
                got.unwrap().own_path(Controller::Memory),
                Some(cg.join(w)),
                "{}",
                case.own
            ),
            None => assert!(
                matches!(got, Err(Error::OwnOutsideMount { .. })),
                "{}",
                case.own
            ),
        }
    }
}

#[test]
fn detection_errors() {
    // Mounted controller without a /proc/self/cgroup line.
    let fake = Fake::with_tables(Kind::V1Split, Some("4:memory:/\n"));
    assert!(matches!(
        fake.detect(Kind::V1Split),
        Err(Error::NoHierarchy { .. })
    ));
    // statfs says cgroup2 but mountinfo has no cgroup2 mount.
    let fake = Fake::new(Kind::V1Split);
    assert!(matches!(
        fake.detect(Kind::V2),
        Err(Error::NoHierarchy { .. })
    ));
    // No /proc at all.
    let tmp = tempfile::tempdir().unwrap();
    let err = CgroupFs::detect_with_hint(tmp.path(), tmp.path(), RootFs::Other).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err}");
    assert!(err.to_string().contains("self/mountinfo"), "{err}");
}

#[test]
fn with_root_v1() {
    let fake = Fake::new(Kind::V1Split);
    let cg = &fake.cg;
    for h in ["cpu", "cpuacct", "memory", "pids", "freezer"] {
        fs::create_dir_all(cg.join(h).join("kube")).unwrap();
    }
    struct Case {
        root: &'static str,
        memory: Option<&'static str>,
        cpu: &'static str,
    }
    let cases = [
        Case {
            root: "/",
            memory: Some("memory"),
            cpu: "cpu",
        },
        Case {
            root: "/kube",
            memory: Some("memory/kube"),
            cpu: "cpu/kube",
        },
        Case {
            root: "/kube/",
            memory: Some("memory/kube"),
            cpu: "cpu/kube",
        },
        Case {
            root: "",
            memory: Some("memory/process_api/abc"),
            cpu: "cpu",
        },
        Case {
            root: ".",
            memory: Some("memory/process_api/abc"),
            cpu: "cpu",
        },
        Case {
            root: "mk/sub",
            memory: Some("memory/process_api/abc/mk/sub"),
            cpu: "cpu/mk/sub",
        },
    ];
    for case in cases {
        let fs = fake
            .detect(Kind::V1Split)
            .unwrap()
            .with_root(case.root, "agent")
            .unwrap();
        assert_eq!(
            fs.root_path(Controller::Memory),
            case.memory.map(|m| cg.join(m)),
            "{:?}",
            case.root
        );
        assert_eq!(
            fs.root_path(Controller::Cpu),
            Some(cg.join(case.cpu)),
            "{:?}",
            case.root
        );
        assert!(fs.root_path(Controller::Cpu).unwrap().is_dir());
        assert_eq!(fs.features().cgroup_root, case.root);
    }
    // A missing absolute root is created (the kubelet would refuse it).
    let fs = fake
        .detect(Kind::V1Split)
        .unwrap()
        .with_root("/missing", "agent")
        .unwrap();
    assert!(fs.root_path(Controller::Cpu).unwrap().is_dir());
    for bad in ["../x", "/a/../b", "a/.."] {
        let err = fake.detect(Kind::V1Split).unwrap().with_root(bad, "agent");
        assert!(matches!(err, Err(Error::InvalidName { .. })), "{bad}");
    }
}

/// The fake v2 own cgroup `agent.service` holding `procs`, with its leaf `agent` pre-created
/// (the kernel would fill it with files at mkdir).
fn v2_own(fake: &Fake, procs: &str) -> PathBuf {
    let own = fake.cg.join(V2_OWN);
    cgdir(&own, &V2_DIR_FILES);
    write(&own.join("cgroup.procs"), procs);
    cgdir(&own.join("agent"), &V2_DIR_FILES);
    own
}

#[test]
fn with_root_v2_relative_moves_agent_into_leaf_and_delegates() {
    let me = std::process::id();
    for (root, want_root) in [("", ""), (".", ""), ("pods", "pods")] {
        let fake = Fake::new(Kind::V2);
        let own = v2_own(&fake, &format!("{me}\n"));
        let fs = fake
            .detect(Kind::V2)
            .unwrap()
            .with_root(root, "agent")
            .unwrap();
        assert_eq!(read(&own.join("agent/cgroup.procs")), me.to_string());
        assert_eq!(
            read(&own.join("cgroup.subtree_control")),
            "+cpu +memory +pids"
        );
        let want = if want_root.is_empty() {
            own.clone()
        } else {
            own.join(want_root)
        };
        assert_eq!(fs.root_path(Controller::Memory), Some(want.clone()));
        assert!(want.is_dir());
        assert_eq!(fs.own_path(Controller::Cpu), Some(own.join("agent")));
    }
}

#[test]
fn with_root_v2_refuses_sibling_processes() {
    let me = std::process::id();
    let fake = Fake::new(Kind::V2);
    let own = v2_own(&fake, &format!("{me}\n4242\n"));
    let err = fake
        .detect(Kind::V2)
        .unwrap()
        .with_root("", "agent")
        .unwrap_err();
    match &err {
        Error::InternalProcesses { path, pids } => {
            assert_eq!(path, &own);
            assert_eq!(pids, &vec![4242]);
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("Delegate=yes") && msg.contains("4242"),
        "{msg}"
    );
    // Nothing was moved or enabled.
    assert_eq!(read(&own.join("agent/cgroup.procs")), "");
    assert_eq!(read(&own.join("cgroup.subtree_control")), "");
}

#[test]
fn with_root_v2_is_idempotent_when_already_in_the_leaf() {
    let fake = Fake::with_tables(Kind::V2, Some(&format!("0::/{V2_OWN}/agent\n")));
    let own = v2_own(&fake, "");
    let fs = fake
        .detect(Kind::V2)
        .unwrap()
        .with_root("", "agent")
        .unwrap();
    assert_eq!(fs.root_path(Controller::Pids), Some(own.clone()));
    assert_eq!(
        read(&own.join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    // An absolute root on v2 is used as is, nothing moves.
    let fake = Fake::new(Kind::V2);
    let own = v2_own(&fake, "1\n");
    let fs = fake
        .detect(Kind::V2)
        .unwrap()
        .with_root(&format!("/{V2_OWN}"), "agent")
        .unwrap();
    assert_eq!(fs.root_path(Controller::Cpu), Some(own.clone()));
    assert_eq!(read(&own.join("agent/cgroup.procs")), "");
}

#[test]
fn v2_create_enables_controllers_in_each_new_parent_only() {
    let fake = Fake::new(Kind::V2);
    let cg = &fake.cg;
    cgdir(cg, &V2_DIR_FILES);
    // Only cpu and memory delegated below kubepods: pids is not offered there.
    cgdir(
        &cg.join("kubepods"),
        &[
            ("cgroup.controllers", "cpu memory"),
            ("cgroup.subtree_control", ""),
        ],
    );
    // burstable already has cpu enabled: only memory is added.
    cgdir(
        &cg.join("kubepods/burstable"),
        &[
            ("cgroup.controllers", "cpu memory"),
            ("cgroup.subtree_control", "cpu"),
        ],
    );
    let fs = fake.detect(Kind::V2).unwrap();
    fs.create(&name(&["kubepods", "burstable", "pod1"]))
        .unwrap();
    assert_eq!(
        read(&cg.join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(
        read(&cg.join("kubepods/cgroup.subtree_control")),
        "+cpu +memory"
    );
    assert_eq!(
        read(&cg.join("kubepods/burstable/cgroup.subtree_control")),
        "+memory"
    );
    // The leaf is created but nothing is written into it (it may hold processes).
    let leaf = cg.join("kubepods/burstable/pod1");
    assert!(leaf.is_dir());
    assert_eq!(fs::read_dir(&leaf).unwrap().count(), 0);
    assert!(fs.exists(&name(&["kubepods", "burstable", "pod1"])));
    assert!(!fs.exists(&name(&["kubepods", "nope"])));
}

type Op = fn(&CgroupFs, &CgroupName) -> Result<(), Error>;
/// A file a set_* call must write: (controller, file name, expected value).
type Expect = (Controller, &'static str, &'static str);
/// (what, op, files on v1, files on v2).
type SetCase = (&'static str, Op, Vec<Expect>, Vec<Expect>);

#[test]
fn set_writes_the_right_file_and_value() {
    let cases: Vec<SetCase> = vec![
        (
            "memory 50Mi",
            |fs, n| fs.set_memory_limit(n, Some(52_428_800)),
            vec![(Controller::Memory, "memory.limit_in_bytes", "52428800")],
            vec![(Controller::Memory, "memory.max", "52428800")],
        ),
        (
            "memory unlimited",
            |fs, n| fs.set_memory_limit(n, None),
            vec![(Controller::Memory, "memory.limit_in_bytes", "-1")],
            vec![(Controller::Memory, "memory.max", "max")],
        ),
        (
            "shares 1024",
            |fs, n| fs.set_cpu_shares(n, 1024),
            vec![(Controller::Cpu, "cpu.shares", "1024")],
            vec![(Controller::Cpu, "cpu.weight", "39")],
        ),
        (
            "container shares 1024 (the runtime's map)",
            |fs, n| fs.set_cpu_shares_with(n, 1024, WeightMap::Runtime),
            vec![(Controller::Cpu, "cpu.shares", "1024")],
            vec![(Controller::Cpu, "cpu.weight", "100")],
        ),
        (
            "shares 0 clamps to 2",
            |fs, n| fs.set_cpu_shares(n, 0),
            vec![(Controller::Cpu, "cpu.shares", "2")],
            vec![(Controller::Cpu, "cpu.weight", "1")],
        ),
        (
            "quota 500m",
            |fs, n| fs.set_cpu_quota(n, Some(50_000), 100_000),
            vec![
                (Controller::Cpu, "cpu.cfs_period_us", "100000"),
                (Controller::Cpu, "cpu.cfs_quota_us", "50000"),
            ],
            vec![(Controller::Cpu, "cpu.max", "50000 100000")],
        ),
        (
            "no quota",
            |fs, n| fs.set_cpu_quota(n, None, 100_000),
            vec![
                (Controller::Cpu, "cpu.cfs_period_us", "100000"),
                (Controller::Cpu, "cpu.cfs_quota_us", "-1"),
            ],
            vec![(Controller::Cpu, "cpu.max", "max 100000")],
        ),
        (
            "pids 100",
            |fs, n| fs.set_pids_max(n, Some(100)),
            vec![(Controller::Pids, "pids.max", "100")],
            vec![(Controller::Pids, "pids.max", "100")],
        ),
        (
            "pids unlimited",
            |fs, n| fs.set_pids_max(n, None),
            vec![(Controller::Pids, "pids.max", "max")],
            vec![(Controller::Pids, "pids.max", "max")],
        ),
        (
            "pids -1 is unlimited",
            |fs, n| fs.set_pids_max(n, Some(-1)),
            vec![(Controller::Pids, "pids.max", "max")],
            vec![(Controller::Pids, "pids.max", "max")],
        ),
        (
            "oom group (v1: nothing)",
            |fs, n| fs.set_memory_oom_group(n, true),
            vec![],
            vec![(Controller::Memory, "memory.oom.group", "1")],
        ),
        (
            "add process",
            |fs, n| fs.add_process(n, 4242),
            vec![
                (Controller::Cpu, "cgroup.procs", "4242"),
                (Controller::Cpuacct, "cgroup.procs", "4242"),
                (Controller::Memory, "cgroup.procs", "4242"),
                (Controller::Pids, "cgroup.procs", "4242"),
                (Controller::Freezer, "cgroup.procs", "4242"),
                (Controller::Devices, "cgroup.procs", "4242"),
            ],
            vec![(Controller::Memory, "cgroup.procs", "4242")],
        ),
    ];
    for kind in [Kind::V1Split, Kind::Hybrid, Kind::V2] {
        for (what, op, v1, v2) in &cases {
            let fake = Fake::new(kind);
            if kind == Kind::V2 {
                cgdir(&fake.cg, &V2_DIR_FILES);
                cgdir(&fake.cg.join("kubepods"), &V2_DIR_FILES);
            }
            let fs = fake.detect(kind).unwrap();
            let n = name(&["kubepods", "pod1"]);
            fs.create(&n).unwrap();
            let files = if kind == Kind::V2 { v2 } else { v1 };
            // Files exist as the kernel would show them; writes never create files, so an
            // op writing anywhere else fails.
            for (c, f, _) in files {
                write(&fs.path(*c, &n).unwrap().join(f), "initial");
            }
            op(&fs, &n).unwrap_or_else(|e| panic!("{kind:?} {what}: {e}"));
            for (c, f, want) in files {
                let got = read(&fs.path(*c, &n).unwrap().join(f));
                assert_eq!(&got, want, "{kind:?} {what}: {c} {f}");
            }
        }
    }
}

#[test]
fn cpu_weight_uses_the_kubelets_linear_map() {
    for (shares, weight) in [
        (0, 1),
        (1, 1),
        (2, 1),
        (256, 10),
        (1024, 39),
        (2048, 79),
        (262_143, 9_999),
        (262_144, 10_000),
        (1 << 20, 10_000),
    ] {
        assert_eq!(cpu_shares_to_weight(shares), weight, "shares {shares}");
    }
}

/// The container map of runc >= 1.3.2 / crun >= 1.23 at the points docs/cgroups and lab 2 quote.
#[test]
fn container_cpu_weight_uses_the_runtimes_map() {
    for (shares, weight) in [(2, 1), (102, 17), (1024, 100), (262_144, 10_000)] {
        assert_eq!(
            cpu_shares_to_weight_runtime(shares),
            weight,
            "shares {shares}"
        );
    }
    // the kubelet's linear map at the same points, for contrast
    let linear: Vec<u64> = [2, 102, 1024, 262_144]
        .into_iter()
        .map(cpu_shares_to_weight)
        .collect();
    assert_eq!(linear, vec![1, 4, 39, 10_000]);
}

#[test]
fn cgroup_names() {
    let n = CgroupName::from_cgroupfs("/kubepods/burstable/pod1234-ab").unwrap();
    assert_eq!(n, name(&["kubepods", "burstable", "pod1234-ab"]));
    assert_eq!(n.to_cgroupfs(), "/kubepods/burstable/pod1234-ab");
    assert_eq!(n.to_string(), "/kubepods/burstable/pod1234-ab");
    assert_eq!(n.parent().unwrap(), name(&["kubepods", "burstable"]));
    assert_eq!(n.parent().unwrap().child("pod1234-ab").unwrap(), n);
    assert_eq!(CgroupName::root().to_cgroupfs(), "/");
    assert_eq!(CgroupName::from_cgroupfs("/").unwrap(), CgroupName::root());
    assert!(CgroupName::root().parent().is_none());
    for bad in ["", ".", "..", "a/b", "a\0"] {
        assert!(CgroupName::new([bad]).is_err(), "{bad:?}");
        assert!(n.child(bad).is_err(), "{bad:?}");
    }
    assert!(CgroupName::from_cgroupfs("/a/../b").is_err());
}

#[test]
fn remove_deletes_the_subtree_leaf_first_and_tolerates_absence() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake
        .detect(Kind::V1Split)
        .unwrap()
        .with_root("", "agent")
        .unwrap();
    fs.create(&name(&["a", "b", "c"])).unwrap();
    fs.create(&name(&["a", "d"])).unwrap();
    fs.create(&name(&["keep"])).unwrap();
    assert!(fs.exists(&name(&["a", "b", "c"])));
    fs.remove(&name(&["a"])).unwrap();
    for c in Controller::ALL {
        assert!(!fs.path(c, &name(&["a"])).unwrap().exists(), "{c}");
    }
    assert!(fs.exists(&name(&["keep"])));
    fs.remove(&name(&["a"])).unwrap();
    assert!(matches!(
        fs.remove(&CgroupName::root()),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        fs.kill(&CgroupName::root()),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn pids_are_recursive_and_merged_over_hierarchies() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    fs.create(&n.child("c").unwrap()).unwrap();
    // Fake pids only: these tests never signal them.
    write(
        &fs.path(Controller::Memory, &n)
            .unwrap()
            .join("cgroup.procs"),
        "10\n11\n",
    );
    write(
        &fs.path(Controller::Memory, &n)
            .unwrap()
            .join("c/cgroup.procs"),
        "12\n",
    );
    write(
        &fs.path(Controller::Cpu, &n).unwrap().join("cgroup.procs"),
        "11\n13\n",
    );
    assert_eq!(fs.pids(&n).unwrap(), vec![10, 11, 12, 13]);
    assert_eq!(fs.pids(&name(&["absent"])).unwrap(), Vec::<i32>::new());
    write(
        &fs.path(Controller::Pids, &n).unwrap().join("cgroup.procs"),
        "x\n",
    );
    assert!(matches!(fs.pids(&n), Err(Error::Parse { .. })));
    // Killing an absent or empty cgroup is a no-op.
    fs.kill(&name(&["absent"])).unwrap();
}

#[test]
fn freeze_v1_and_v2() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    fs.create(&n).unwrap();
    let state = fs
        .path(Controller::Freezer, &n)
        .unwrap()
        .join("freezer.state");
    write(&state, "THAWED\n");
    fs.freeze(&n, true).unwrap();
    assert_eq!(read(&state), "FROZEN");
    fs.freeze(&n, false).unwrap();
    assert_eq!(read(&state), "THAWED");

    let fake = Fake::new(Kind::V2);
    let dir = fake.cg.join("pod");
    cgdir(
        &dir,
        &[
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 1\nfrozen 1\n"),
        ],
    );
    let fs = fake.detect(Kind::V2).unwrap();
    fs.freeze(&n, true).unwrap();
    assert_eq!(read(&dir.join("cgroup.freeze")), "1");
}

/// Waits until `pid` (our child) is a zombie: dead, but its pid is not reusable yet.
fn wait_zombie(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(") ").unwrap().1.chars().next().unwrap();
        if state == 'Z' {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} still {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn kill_freezes_signals_and_thaws_on_a_fake_v1_tree() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    fs.create(&n).unwrap();
    let state = fs
        .path(Controller::Freezer, &n)
        .unwrap()
        .join("freezer.state");
    write(&state, "THAWED\n");
    // A real child of ours stands in for the cgroup's process; the fake procs file lists it until
    // it is a zombie (so its pid cannot be reused while kill() may still signal it).
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = child.id();
    let procs = fs
        .path(Controller::Memory, &n)
        .unwrap()
        .join("cgroup.procs");
    write(&procs, &format!("{pid}\n"));
    std::thread::scope(|s| {
        s.spawn(|| {
            wait_zombie(pid);
            write(&procs, "");
        });
        fs.kill(&n).unwrap();
    });
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(read(&state), "THAWED");
}

#[test]
fn kill_writes_cgroup_kill_on_v2() {
    let fake = Fake::new(Kind::V2);
    let dir = fake.cg.join("pod");
    cgdir(&dir, &[("cgroup.kill", "0"), ("cgroup.freeze", "0")]);
    let fs = fake.detect(Kind::V2).unwrap();
    let n = name(&["pod"]);
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = child.id();
    let procs = dir.join("cgroup.procs");
    write(&procs, &format!("{pid}\n"));
    let kill_file = dir.join("cgroup.kill");
    std::thread::scope(|s| {
        s.spawn(|| {
            // Play the kernel: once cgroup.kill says 1, kill the member.
            while read(&kill_file) != "1" {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::SIGKILL,
            )
            .unwrap();
            wait_zombie(pid);
            write(&procs, "");
        });
        fs.kill(&n).unwrap();
    });
    child.wait().unwrap();
    // cgroup.freeze untouched: cgroup.kill needs no freeze.
    assert_eq!(read(&dir.join("cgroup.freeze")), "0");
}

#[test]
fn memory_stats_v1_and_v2() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    fs.create(&n).unwrap();
    let d = fs.path(Controller::Memory, &n).unwrap();
    write(&d.join("memory.usage_in_bytes"), "1000\n");
    write(&d.join("memory.limit_in_bytes"), "9223372036854771712\n");
    write(
        &d.join("memory.stat"),
        "cache 300\nrss 600\ninactive_file 1\ntotal_inactive_file 300\ntotal_rss 600\n",
    );
    let s = fs.memory_stats(&n).unwrap();
    assert_eq!(
        s,
        MemoryStats {
            usage_bytes: 1000,
            inactive_file_bytes: 300,
            working_set_bytes: 700,
            limit_bytes: None
        }
    );
    write(&d.join("memory.limit_in_bytes"), "52428800\n");
    write(&d.join("memory.stat"), "total_inactive_file 5000\n");
    let s = fs.memory_stats(&n).unwrap();
    assert_eq!(
        (s.working_set_bytes, s.limit_bytes),
        (0, Some(52_428_800)),
        "clamped at 0"
    );

    let fake = Fake::new(Kind::V2);
    let d = fake.cg.join("pod");
    cgdir(
        &d,
        &[
            ("memory.current", "4096\n"),
            ("memory.max", "max\n"),
            (
                "memory.stat",
                "anon 1024\nfile 3072\ninactive_file 1000\nactive_file 2072\n",
            ),
        ],
    );
    let fs = fake.detect(Kind::V2).unwrap();
    let s = fs.memory_stats(&n).unwrap();
    assert_eq!(
        (
            s.usage_bytes,
            s.inactive_file_bytes,
            s.working_set_bytes,
            s.limit_bytes
        ),
        (4096, 1000, 3096, None)
    );
    write(&d.join("memory.max"), "104857600\n");
    assert_eq!(fs.memory_stats(&n).unwrap().limit_bytes, Some(104_857_600));
    write(&d.join("memory.stat"), "anon 1024\n");
    assert!(matches!(fs.memory_stats(&n), Err(Error::Parse { .. })));
}

#[test]
fn root_memory_stats_v1_and_v2() {
    let fake = Fake::new(Kind::Hybrid);
    let fs = fake
        .detect(Kind::Hybrid)
        .unwrap()
        .with_root("", "agent")
        .unwrap();
    // The host's root memcg, not the agent's own cgroup.
    let m = fake.cg.join("memory");
    write(&m.join("memory.usage_in_bytes"), "8000\n");
    write(
        &m.join("memory.stat"),
        "cache 10\ntotal_inactive_file 3000\n",
    );
    let s = fs.root_memory_stats().unwrap();
    assert_eq!(
        (
            s.usage_bytes,
            s.inactive_file_bytes,
            s.working_set_bytes,
            s.limit_bytes
        ),
        (8000, 3000, 5000, None)
    );

    let fake = Fake::new(Kind::V2);
    write(
        &fake.cg.join("memory.stat"),
        "anon 2000\nfile 6000\ninactive_file 2500\nshmem 5\n",
    );
    let fs = fake.detect(Kind::V2).unwrap();
    let s = fs.root_memory_stats().unwrap();
    assert_eq!(
        (s.usage_bytes, s.inactive_file_bytes, s.working_set_bytes),
        (8000, 2500, 5500)
    );
}

#[test]
fn oom_kill_count_v1_sums_the_subtree_v2_reads_memory_events() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    fs.create(&n.child("c1").unwrap()).unwrap();
    fs.create(&n.child("c2").unwrap()).unwrap();
    let d = fs.path(Controller::Memory, &n).unwrap();
    let oc = |k| format!("oom_kill_disable 0\nunder_oom 0\noom_kill {k}\n");
    write(&d.join("memory.oom_control"), &oc(0));
    write(&d.join("c1/memory.oom_control"), &oc(2));
    write(&d.join("c2/memory.oom_control"), &oc(1));
    assert_eq!(fs.oom_kill_count(&n).unwrap(), 3);
    assert_eq!(fs.oom_kill_count(&n.child("c1").unwrap()).unwrap(), 2);

    let fake = Fake::new(Kind::V2);
    cgdir(
        &fake.cg.join("pod"),
        &[(
            "memory.events",
            "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
        )],
    );
    let fs = fake.detect(Kind::V2).unwrap();
    assert_eq!(fs.oom_kill_count(&n).unwrap(), 2);
}

#[test]
fn cpu_usage_v1_cpuacct_and_v2_cpu_stat() {
    for kind in [Kind::V1Split, Kind::V1Comounted] {
        let fake = Fake::new(kind);
        let fs = fake.detect(kind).unwrap();
        let n = name(&["pod"]);
        fs.create(&n).unwrap();
        write(
            &fs.path(Controller::Cpuacct, &n)
                .unwrap()
                .join("cpuacct.usage"),
            "123456789\n",
        );
        assert_eq!(fs.cpu_usage_ns(&n).unwrap(), 123_456_789, "{kind:?}");
    }
    let fake = Fake::new(Kind::V2);
    cgdir(
        &fake.cg.join("pod"),
        &[(
            "cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
        )],
    );
    let fs = fake.detect(Kind::V2).unwrap();
    assert_eq!(fs.cpu_usage_ns(&name(&["pod"])).unwrap(), 1_500_000);
}

#[test]
fn features_report() {
    let fake = Fake::new(Kind::Hybrid);
    let f = fake.detect(Kind::Hybrid).unwrap().features();
    assert_eq!(f.layout, Layout::Hybrid);
    assert!(!f.has_cgroup_kill);
    assert_eq!(f.hierarchies.len(), 6);
    assert!(f.missing_controllers.is_empty());
    assert!(
        f.hierarchies
            .iter()
            .all(|h| h.mount_root == "/" && h.writable)
    );
    serde_json::to_string(&f).unwrap();

    for (release, kill_file, want) in [
        ("6.1.0-13-amd64\n", false, true),
        ("5.14.0\n", false, true),
        ("5.10.0-28-amd64\n", false, false),
        ("5.10.0\n", true, true),
    ] {
        let fake = Fake::new(Kind::V2);
        cgdir(&fake.cg, &V2_DIR_FILES);
        write(&fake.proc_root.join("sys/kernel/osrelease"), release);
        if kill_file {
            write(&fake.cg.join(V2_OWN).join("cgroup.kill"), "");
        }
        let f = fake.detect(Kind::V2).unwrap().features();
        assert_eq!(f.has_cgroup_kill, want, "{release:?} file={kill_file}");
        assert_eq!(
            f.hierarchies[0].available,
            ["cpuset", "cpu", "io", "memory", "pids"]
        );
    }
}

#[test]
fn procs_join_prepares_paths() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    let files = fs.procs_files(&n);
    assert_eq!(files.len(), 6);
    assert!(files.iter().all(|f| f.ends_with("pod/cgroup.procs")));
    fs.procs_join(&n).unwrap();
}

#[test]
fn a_new_child_joins_through_tasks_on_v1_and_hybrid_and_cgroup_procs_on_v2() {
    for (kind, file, count) in [
        (Kind::V1Split, "tasks", 6),
        (Kind::V1Comounted, "tasks", 3),
        (Kind::Hybrid, "tasks", 6),
        (Kind::V2, "cgroup.procs", 1),
    ] {
        let fake = Fake::new(kind);
        let fs = fake.detect(kind).unwrap();
        let n = name(&["pod", "ctr"]);
        let join = fs.join_files(&n);
        assert_eq!(join.len(), count, "{kind:?}");
        assert!(
            join.iter().all(|f| f.ends_with(format!("pod/ctr/{file}"))),
            "{kind:?}: {join:?}"
        );
        // Hybrid's empty unified tree holds no controller: it is not joined.
        assert!(!join.iter().any(|f| f.starts_with(fake.cg.join("unified"))));
        // Moving another (possibly multi-threaded) process still goes through cgroup.procs,
        // in the same directories.
        let procs = fs.procs_files(&n);
        assert_eq!(
            join.iter().map(|f| f.parent()).collect::<Vec<_>>(),
            procs.iter().map(|f| f.parent()).collect::<Vec<_>>()
        );
        assert!(procs.iter().all(|f| f.ends_with("cgroup.procs")));
        assert_eq!(fs.layout().join_file(), file);
    }
}

mod parsers {
    use super::super::parse::*;

    #[test]
    fn flat_keyed_files() {
        let m = flat_keyed("cache 4096\nrss 8192\n\ntotal_inactive_file 100\n").unwrap();
        assert_eq!(m["cache"], 4096);
        assert_eq!(m["total_inactive_file"], 100);
        assert_eq!(m.len(), 3);
        let m = flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 7").unwrap();
        assert_eq!(m["oom_kill"], 7);
        for (bad, line) in [("a", 1), ("a 1\nb 1 2", 2), ("a x", 1), ("a -1", 1)] {
            assert_eq!(flat_keyed(bad).unwrap_err().line, line, "{bad:?}");
        }
    }

    #[test]
    fn nested_keyed_and_psi() {
        let text = "some avg10=0.12 avg60=1.50 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.25 avg300=0.00 total=99\n";
        let n = nested_keyed(text).unwrap();
        assert_eq!(n["some"]["total"], "12345");
        let p = psi(text).unwrap();
        assert_eq!(p.some.avg10, 0.12);
        assert_eq!(p.some.avg60, 1.5);
        assert_eq!(p.some.total_us, 12_345);
        assert_eq!(p.full.unwrap().total_us, 99);
        let cpu = psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(cpu.full.is_none());
        for bad in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            "some avg10 avg60=0.00\n",
            "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
            "some avg10=0.00 avg60=0.00 avg300=0.00\n",
        ] {
            assert!(psi(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn single_values() {
        assert_eq!(max_or_u64("max\n").unwrap(), None);
        assert_eq!(max_or_u64("52428800\n").unwrap(), Some(52_428_800));
        assert!(max_or_u64("-1").is_err());
        for (r, want) in [
            ("6.18.44-fc-v657\n", Some((6, 18))),
            ("5.14.0", Some((5, 14))),
            ("4.19-rc1", Some((4, 19))),
            ("junk", None),
        ] {
            assert_eq!(kernel_version(r), want, "{r:?}");
        }
    }
}

/// v1 device rules: deny everything, then allow each of runc's defaults (the last written is
/// `/dev/net/tun`); a privileged container's single rule allows all.
#[test]
fn device_rules_on_v1() {
    let fake = Fake::new(Kind::V1Split);
    let fs = fake.detect(Kind::V1Split).unwrap();
    let n = name(&["pod"]);
    fs.create(&n).unwrap();
    let dir = fs.path(Controller::Devices, &n).unwrap();
    write(&dir.join("devices.allow"), "");
    write(&dir.join("devices.deny"), "");
    assert!(
        fs.set_devices(&n, &super::devices::container_rules(false))
            .unwrap()
    );
    assert_eq!(read(&dir.join("devices.deny")), "a");
    assert_eq!(read(&dir.join("devices.allow")), "c 10:200 rwm");
    assert!(
        fs.set_devices(&n, &super::devices::container_rules(true))
            .unwrap()
    );
    assert_eq!(read(&dir.join("devices.allow")), "a");
    // Without a devices hierarchy: nothing to write.
    let fake = Fake::new(Kind::V1Comounted);
    let fs = fake.detect(Kind::V1Comounted).unwrap();
    assert!(
        !fs.set_devices(&n, &super::devices::container_rules(false))
            .unwrap()
    );
}
