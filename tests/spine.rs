//! The spine end to end, as root, with the real binary: manifests in, processes and cgroups
//! out. Each test runs its own agent in its own test cgroup (see `common`).

mod common;

use std::time::Duration;

use common::{Agent, alive, container_status};

const T: Duration = Duration::from_secs(20);

fn uid_of(p: &serde_json::Value) -> String {
    p["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn pid_of(c: &serde_json::Value, a: &Agent) -> i32 {
    // The container's pid is in the shim's state.json, found by container ID.
    let id = c["containerID"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let state = std::fs::read_to_string(a.root_dir.join("containers").join(&id).join("state.json"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    v["pid"].as_i64().unwrap() as i32
}

const SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  # sleep as PID 1 ignores SIGTERM: the edit and the delete wait the grace period.
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
"#;

#[test]
fn start_edit_delete_with_cgroup_values() {
    let a = Agent::start(&[]);
    a.write_manifest("sleeper.yaml", SLEEPER);
    let c = a.wait_running("sleeper", "main", T);
    let pod = a.pod("sleeper").unwrap();
    let uid = uid_of(&pod);
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    let pid = pid_of(&c, &a);
    assert!(alive(pid));
    // The process runs inside its container cgroup.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("/pod{uid}/main")), "{cg}");
    if common::is_v2() {
        let f = |n| a.pod_cgroup_file(&uid, Some("main"), n).unwrap();
        assert_eq!(read(&f("memory.max")), (64 << 20).to_string());
        assert_eq!(read(&f("cpu.max")), "50000 100000");
        // NoSwap (swapBehavior ""): memory.swap.max = 0 where the kernel accounts swap (the
        // test cgroup has the file then); without swap accounting there is nothing to set.
        let swap = a.pod_cgroup_file(&uid, Some("main"), "memory.swap.max");
        match a.cgroup.find("", "memory.swap.max") {
            Some(_) => assert_eq!(read(&swap.expect("memory.swap.max of the container")), "0"),
            None => assert!(swap.is_none(), "memory.swap.max without swap accounting?"),
        }
    } else {
        let f = |n| a.pod_cgroup_file(&uid, Some("main"), n).unwrap();
        assert_eq!(read(&f("memory.limit_in_bytes")), (64 << 20).to_string());
        // NoSwap on v1: memory+swap limited to the memory limit where the kernel accounts
        // swap (swapaccount: the test cgroup has memory.memsw.* then).
        let memsw = a.pod_cgroup_file(&uid, Some("main"), "memory.memsw.limit_in_bytes");
        match a.cgroup.find("", "memory.memsw.limit_in_bytes") {
            Some(_) => assert_eq!(
                read(&memsw.expect("memory.memsw.limit_in_bytes of the container")),
                (64 << 20).to_string()
            ),
            None => assert!(memsw.is_none(), "memsw files without swap accounting?"),
        }
        assert_eq!(read(&f("cpu.shares")), "256");
        assert_eq!(read(&f("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&f("cpu.cfs_period_us")), "100000");
        let p = |n| a.pod_cgroup_file(&uid, None, n).unwrap();
        assert_eq!(read(&p("memory.limit_in_bytes")), (64 << 20).to_string());
        assert_eq!(read(&p("cpu.shares")), "256");
    }
    // oom_score_adj of a Burstable container: 1000 - 1000*request/capacity, in [3, 999].
    let adj: i32 = read(std::path::Path::new(&format!("/proc/{pid}/oom_score_adj")))
        .parse()
        .unwrap();
    assert!((3..=999).contains(&adj), "oom_score_adj {adj}");

    // Edit: new UID; the old pod is terminated first, then the new one starts.
    a.write_manifest("sleeper.yaml", &SLEEPER.replace("3600", "3601"));
    let new_uid = a.wait_for("new pod uid", T, |a| {
        let p = a.pod("sleeper")?;
        let u = uid_of(&p);
        (u != uid && container_status(&p, "main")?["state"]["running"].is_object()).then_some(u)
    });
    assert!(!alive(pid), "old container still alive after edit");
    assert!(
        a.pod_cgroup_file(&uid, None, "cgroup.procs").is_none(),
        "old pod cgroup left behind"
    );

    // Delete: processes gone, cgroups removed, pod gone from /pods.
    let c = a.wait_running("sleeper", "main", T);
    let pid2 = pid_of(&c, &a);
    a.remove_manifest("sleeper.yaml");
    a.wait_for("pod removed", T, |a| {
        a.pod("sleeper").is_none().then_some(())
    });
    assert!(!alive(pid2));
    assert!(a.pod_cgroup_file(&new_uid, None, "cgroup.procs").is_none());
}

#[test]
fn guaranteed_and_besteffort_layout() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "g.yaml",
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"g"},"spec":{"containers":[{"name":"c","image":"localhost/busybox:test","command":["sleep","3600"],"resources":{"limits":{"cpu":"100m","memory":"32Mi"}}}]}}"#,
    );
    a.write_manifest(
        "be.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: be}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sleep, '3600']}\n",
    );
    a.wait_running("g", "c", T);
    a.wait_running("be", "c", T);
    let g = a.pod("g").unwrap();
    let be = a.pod("be").unwrap();
    assert_eq!(g["status"]["qosClass"], "Guaranteed");
    assert_eq!(be["status"]["qosClass"], "BestEffort");
    let gdir = a
        .cgroup
        .find(&format!("pods/kubepods/pod{}", uid_of(&g)), "cgroup.procs");
    assert!(
        gdir.is_some(),
        "Guaranteed pod cgroup not directly under kubepods"
    );
    let bdir = a.cgroup.find(
        &format!("pods/kubepods/besteffort/pod{}", uid_of(&be)),
        "cgroup.procs",
    );
    assert!(bdir.is_some(), "BestEffort pod cgroup not under besteffort");
    let pid = pid_of(&container_status(&g, "c").unwrap(), &a);
    // -997 needs CAP_SYS_RESOURCE; without it the agent clamps to its own score (and says so).
    let want = if common::can_lower_oom_score_adj() {
        "-997"
    } else {
        "0"
    };
    assert_eq!(
        read(std::path::Path::new(&format!("/proc/{pid}/oom_score_adj"))),
        want
    );
    if want == "0" {
        assert!(a.log_contains("cannot lower oom_score_adj"));
    }
    let pid = pid_of(&container_status(&be, "c").unwrap(), &a);
    assert_eq!(
        read(std::path::Path::new(&format!("/proc/{pid}/oom_score_adj"))),
        "1000"
    );
}

#[test]
fn oom_killed_then_restarted_with_backoff() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "hog.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: hog
    image: localhost/busybox:test
    # The shell holds 200 MiB of output in a variable (its pipe's children stay small).
    command: ["sh", "-c", "x=$(head -c 209715200 /dev/zero | tr '\\0' a); sleep 60"]
    resources:
      limits: {memory: 50Mi}
"#,
    );
    let c = a.wait_for("OOMKilled", T, |a| {
        let c = container_status(&a.pod("hog")?, "hog")?;
        let term = if c["state"]["terminated"].is_object() {
            &c["state"]["terminated"]
        } else {
            &c["lastState"]["terminated"]
        };
        (term["reason"] == "OOMKilled").then(|| c.clone())
    });
    let term = if c["state"]["terminated"].is_object() {
        &c["state"]["terminated"]
    } else {
        &c["lastState"]["terminated"]
    };
    assert_eq!(term["exitCode"], 137);
    // restartPolicy Always: restarted, then backoff.
    a.wait_for("CrashLoopBackOff", Duration::from_secs(30), |a| {
        let c = container_status(&a.pod("hog")?, "hog")?;
        (c["state"]["waiting"]["reason"] == "CrashLoopBackOff" && c["restartCount"].as_i64()? >= 1)
            .then_some(())
    });
}

#[test]
fn fork_bomb_stops_at_pids_max() {
    let a = Agent::start(&["--pod-max-pids=20"]);
    a.write_manifest(
        "forky.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: forky
  # python3 is the node's: its fork loop goes on after a failed fork (busybox sh exits on
  # its first "can't fork"), so it reports how many of all 100 forks succeeded.
  annotations: {minikubelet.io/host-filesystem: "true"}
spec:
  restartPolicy: Never
  containers:
  - name: bomb
    image: localhost/busybox:test
    command: ["python3", "-c"]
    args:
    - |
      import os, time
      n = 0
      for i in range(100):
          try:
              if os.fork() == 0:
                  time.sleep(30)
                  os._exit(0)
              n += 1
          except OSError:
              pass
      print("forked", n, flush=True)
      time.sleep(30)
"#,
    );
    a.wait_running("forky", "bomb", T);
    let uid = uid_of(&a.pod("forky").unwrap());
    let f = a.pod_cgroup_file(&uid, None, "pids.max").unwrap();
    assert_eq!(read(&f), "20");
    // The container reports how many forks succeeded once it has tried all 100.
    let forked: i64 = a.wait_for("forks tried", T, |a| {
        let dir = a.logs_dir.read_dir().ok()?.flatten().next()?.path();
        let log = std::fs::read_to_string(dir.join("bomb/0.log")).ok()?;
        log.split("forked ").nth(1)?.trim().parse().ok()
    });
    assert!(forked < 100, "all 100 forks succeeded despite pids.max 20");
    let cur = a.pod_cgroup_file(&uid, None, "pids.current").unwrap();
    let n: i64 = read(&cur).parse().unwrap();
    assert!(n <= 20, "pids.current {n} exceeds pids.max");
    // v1 counts the failed fork in the cgroup it happened in (the container's); v2 counts it
    // hierarchically, so the pod's pids.events shows it too.
    let events = [Some("bomb"), None]
        .iter()
        .filter_map(|c| a.pod_cgroup_file(&uid, *c, "pids.events"))
        .map(|p| read(&p))
        .find(|e| !e.ends_with(" 0"))
        .unwrap_or_default();
    assert!(
        events.contains("max") && !events.ends_with(" 0"),
        "pids.events: {events}"
    );
}

#[test]
fn sigterm_then_sigkill_after_grace() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "stubborn.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: polite
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done"]
  - name: rude
    image: localhost/busybox:test
    command: ["sh", "-c", "trap 'echo ignoring TERM' TERM; while true; do sleep 0.1; done"]
"#,
    );
    a.wait_running("stubborn", "polite", T);
    a.wait_running("stubborn", "rude", T);
    let pod = a.pod("stubborn").unwrap();
    let polite = pid_of(&container_status(&pod, "polite").unwrap(), &a);
    let rude = pid_of(&container_status(&pod, "rude").unwrap(), &a);
    // The logs go with the pod: keep them open to read the containers' last words.
    let pod_logs = a.logs_dir.join(format!(
        "default_{}_{}",
        pod["metadata"]["name"].as_str().unwrap(),
        uid_of(&pod)
    ));
    let open = |c: &str| std::fs::File::open(pod_logs.join(c).join("0.log")).unwrap();
    let (mut polite_log, mut rude_log) = (open("polite"), open("rude"));
    let t0 = std::time::Instant::now();
    a.remove_manifest("stubborn.yaml");
    a.wait_for("polite gone", Duration::from_secs(2), |_| {
        (!alive(polite)).then_some(())
    });
    assert!(
        alive(rude) || t0.elapsed() >= Duration::from_secs(3),
        "rude died before the grace period"
    );
    a.wait_for("rude killed", Duration::from_secs(10), |_| {
        (!alive(rude)).then_some(())
    });
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "SIGKILL came after {took:?}, before the 3 s grace"
    );
    // Both got SIGTERM first: polite exited on it, rude said so and went on until SIGKILL.
    let read_all = |f: &mut std::fs::File| {
        let mut s = String::new();
        std::io::Read::read_to_string(f, &mut s).unwrap();
        s
    };
    let polite_said = read_all(&mut polite_log);
    assert!(
        polite_said.contains(" stdout F got TERM"),
        "polite: {polite_said:?}"
    );
    let rude_said = read_all(&mut rude_log);
    assert!(
        rude_said.contains(" stdout F ignoring TERM"),
        "rude: {rude_said:?}"
    );
    // And its logs went with the pod.
    a.wait_for("the pod's log directory removed", T, |_| {
        (!pod_logs.exists()).then_some(())
    });
}

#[test]
fn crash_loop_delays_and_restart_count() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "crash.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'echo hi; exit 3']}\n",
    );
    // First restart is immediate, the second waits 10 s: at ~2 s we see restartCount 1 and
    // CrashLoopBackOff with "back-off 10s".
    let c = a.wait_for("back-off 10s", T, |a| {
        let c = container_status(&a.pod("crash")?, "c")?;
        let msg = c["state"]["waiting"]["message"].as_str()?.to_string();
        msg.contains("back-off 10s").then_some(c)
    });
    assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(c["restartCount"], 1);
    let msg = c["state"]["waiting"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("back-off 10s restarting failed container=c pod=crash-"),
        "{msg}"
    );
    // After 10 s it is restarted once more, then waits 20 s.
    a.wait_for("back-off 20s", Duration::from_secs(25), |a| {
        let c = container_status(&a.pod("crash")?, "c")?;
        c["state"]["waiting"]["message"]
            .as_str()?
            .contains("back-off 20s")
            .then_some(())
    });
    let pod = a.pod("crash").unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    // Three instances so far; the oldest was removed with its log and its symlink: only the
    // current and the previous instance keep a /var/log/containers-style link.
    let links: Vec<_> = std::fs::read_dir(&a.containers_log_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("crash-"))
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    for l in &links {
        assert!(
            std::fs::metadata(l.path()).is_ok(),
            "dangling link {:?}",
            l.path()
        );
    }
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "live.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: live}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 2
"#,
    );
    a.wait_for("liveness restart", Duration::from_secs(30), |a| {
        let c = container_status(&a.pod("live")?, "c")?;
        (c["restartCount"].as_i64()? >= 1).then_some(())
    });
}

/// `(pid, argv)` of every process whose argv holds an argument under `dir`.
fn processes_with_arg_under(dir: &std::path::Path) -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv
            .iter()
            .any(|a| std::path::Path::new(a).starts_with(dir))
        {
            out.push((pid, argv));
        }
    }
    out
}

/// The container's state dir, by the container ID in its status.
fn state_dir_of(c: &serde_json::Value, a: &Agent) -> std::path::PathBuf {
    let id = c["containerID"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    a.root_dir.join("containers").join(id)
}

#[test]
fn containers_are_started_by_a_prestarted_small_shim() {
    let mut a = Agent::start(&[]);
    a.write_manifest("sleeper.yaml", SLEEPER);
    let c = a.wait_running("sleeper", "main", T);
    let dir = state_dir_of(&c, &a);
    let v: serde_json::Value = serde_json::from_str(&read(&dir.join("state.json"))).unwrap();
    let shim_pid = v["shim_pid"].as_i64().unwrap();
    let exe = std::fs::read_link(format!("/proc/{shim_pid}/exe")).unwrap();
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    // A rebuild during the test shows as "minikubelet-shim (deleted)".
    assert!(
        name.starts_with("minikubelet-shim"),
        "shim runs {}",
        exe.display()
    );
    assert!(a.log_contains("shim binary"), "{}", a.agent_log());
    assert!(a.log_contains("spare shim on"), "{}", a.agent_log());
    // The shim was started ahead of the container, and wrote the state dir itself: the same
    // records as a shim the agent starts directly.
    let containers = a.root_dir.join("containers");
    let procs = processes_with_arg_under(&containers);
    let (_, argv) = procs
        .iter()
        .find(|(p, _)| i64::from(*p) == shim_pid)
        .expect("the container's shim");
    assert_eq!(argv[1..], ["shim", &dir.to_string_lossy(), "--prestarted"]);
    let meta: serde_json::Value = serde_json::from_str(&read(&dir.join("meta.json"))).unwrap();
    assert_eq!(meta["container_name"], "main");
    // Static pods are named `<name>-<node name>`; the node name is the lower-cased hostname.
    let node = nix::unistd::gethostname()
        .unwrap()
        .into_string()
        .unwrap()
        .trim()
        .to_lowercase();
    assert_eq!(meta["pod_name"], format!("sleeper-{node}"));
    assert_eq!(a.pod("sleeper").unwrap()["spec"]["nodeName"], node);
    let config: serde_json::Value = serde_json::from_str(&read(&dir.join("config.json"))).unwrap();
    assert_eq!(config["argv"], serde_json::json!(["sleep", "3600"]));
    assert!(dir.join("shim.log").exists());
    // One spare waits for the next container: its state dir does not exist yet.
    let spare_of = |procs: &[(i32, Vec<String>)]| -> Vec<i32> {
        procs
            .iter()
            .filter(|(_, argv)| {
                argv.last().is_some_and(|a| a == "--prestarted")
                    && argv
                        .get(2)
                        .is_some_and(|d| !std::path::Path::new(d).exists())
            })
            .map(|(p, _)| *p)
            .collect()
    };
    let spares = a.wait_for("one spare shim waiting", T, |_| {
        let s = spare_of(&processes_with_arg_under(&containers));
        (s.len() == 1).then_some(s)
    });
    // The agent's exit closes the spare's pipe: it exits, and the container stays.
    a.stop();
    a.wait_for("the spare shim to exit with the agent", T, |_| {
        (!spares.iter().any(|p| alive(*p))).then_some(())
    });
    assert!(alive(shim_pid as i32), "the container's shim stays");
    for d in std::fs::read_dir(&containers).unwrap().flatten() {
        assert!(
            d.path().join("meta.json").exists(),
            "{}",
            d.path().display()
        );
    }
}

#[test]
fn with_prestart_off_every_container_execs_its_shim() {
    let a = Agent::start_wrapped(&["env", "MINIKUBELET_SHIM_PRESTART=off"], &[]);
    a.write_manifest("sleeper.yaml", SLEEPER);
    let c = a.wait_running("sleeper", "main", T);
    let dir = state_dir_of(&c, &a);
    let v: serde_json::Value = serde_json::from_str(&read(&dir.join("state.json"))).unwrap();
    let shim_pid = v["shim_pid"].as_i64().unwrap() as i32;
    let procs = processes_with_arg_under(&a.root_dir.join("containers"));
    assert_eq!(
        procs.len(),
        1,
        "only the container's shim, no spare: {procs:?}"
    );
    assert_eq!(procs[0].0, shim_pid);
    assert_eq!(procs[0].1[1..], ["shim", &dir.to_string_lossy()]);
    assert!(a.log_contains("spare shim off"), "{}", a.agent_log());
    assert!(dir.join("meta.json").exists() && dir.join("config.json").exists());
}

#[test]
fn kill9_of_the_agent_keeps_containers_and_logs() {
    let mut a = Agent::start(&[]);
    a.write_manifest(
        "ticker.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  containers:
  - name: tick
    image: localhost/busybox:test
    command: ["sh", "-c", "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done"]
  - name: short
    image: localhost/busybox:test
    command: ["sh", "-c", "sleep 2; exit 7"]
"#,
    );
    let c = a.wait_running("ticker", "tick", T);
    let pid = pid_of(&c, &a);
    a.wait_running("ticker", "short", T);
    a.kill9();
    // While the agent is down, `short` exits and `tick` keeps logging.
    std::thread::sleep(Duration::from_secs(3));
    assert!(alive(pid));
    a.spawn();
    let c2 = a.wait_running("ticker", "tick", T);
    assert_eq!(
        pid_of(&c2, &a),
        pid,
        "the container was restarted instead of re-adopted"
    );
    assert_eq!(c2["restartCount"], 0);
    // The exit that happened while the agent was down is recorded.
    a.wait_for("short's exit recorded", T, |a| {
        let c = container_status(&a.pod("ticker")?, "short")?;
        let t = if c["state"]["terminated"].is_object() {
            c["state"]["terminated"].clone()
        } else {
            c["lastState"]["terminated"].clone()
        };
        (t["exitCode"] == 7).then_some(())
    });
    // No log line lost: the numbers in the log are consecutive.
    std::thread::sleep(Duration::from_millis(300));
    let uid = uid_of(&a.pod("ticker").unwrap());
    let dir = a
        .logs_dir
        .join(format!(
            "default_{}_{uid}",
            a.pod("ticker").unwrap()["metadata"]["name"]
                .as_str()
                .unwrap()
        ))
        .join("tick");
    let text = std::fs::read_to_string(dir.join("0.log")).unwrap();
    let nums: Vec<i64> = text
        .lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(nums.len() > 40, "too few lines: {}", nums.len());
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a log line was lost around {}", w[0]);
    }
    assert!(
        text.lines().next().unwrap().contains(" stdout F line 0"),
        "not CRI format: {}",
        text.lines().next().unwrap()
    );
}

fn condition(p: &serde_json::Value, t: &str) -> String {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn readiness_and_startup_probes_drive_ready() {
    let a = Agent::start(&[]);
    let flag = a.tmp.path().join("ready");
    a.write_manifest(
        "probed.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: probed
  # The readiness probe tests a flag file the test makes on the node's /tmp (no volumes yet).
  annotations: {{minikubelet.io/host-filesystem: "true"}}
spec:
  containers:
  - name: c
    image: localhost/busybox:test
    command: ["sleep", "3600"]
    startupProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 1
    readinessProbe:
      exec: {{command: ["test", "-f", "{}"]}}
      periodSeconds: 1
"#,
            flag.display()
        ),
    );
    let c = a.wait_running("probed", "c", T);
    assert_eq!(c["ready"], false);
    a.wait_for("started", T, |a| {
        (container_status(&a.pod("probed")?, "c")?["started"] == true).then_some(())
    });
    assert_eq!(condition(&a.pod("probed").unwrap(), "Ready"), "False");
    std::fs::write(&flag, "").unwrap();
    a.wait_for("Ready=True", T, |a| {
        (condition(&a.pod("probed")?, "Ready") == "True").then_some(())
    });
    std::fs::remove_file(&flag).unwrap();
    let p = a.wait_for("Ready=False again", T, |a| {
        a.pod("probed").filter(|p| condition(p, "Ready") == "False")
    });
    assert_eq!(
        container_status(&p, "c").unwrap()["restartCount"],
        0,
        "readiness never restarts"
    );
}

#[test]
fn restart_policies_on_failure_and_never() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "ok.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  restartPolicy: OnFailure\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'exit 0']}\n",
    );
    a.write_manifest(
        "never.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: never}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'exit 5']}\n",
    );
    a.write_manifest(
        "onfail.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: onfail}\nspec:\n  restartPolicy: OnFailure\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'exit 5']}\n",
    );
    let ok = a.wait_for("ok Succeeded", T, |a| {
        a.pod("ok").filter(|p| p["status"]["phase"] == "Succeeded")
    });
    assert_eq!(
        container_status(&ok, "c").unwrap()["state"]["terminated"]["reason"],
        "Completed"
    );
    let never = a.wait_for("never Failed", T, |a| {
        a.pod("never").filter(|p| p["status"]["phase"] == "Failed")
    });
    let c = container_status(&never, "c").unwrap();
    assert_eq!(c["state"]["terminated"]["exitCode"], 5);
    assert_eq!(c["restartCount"], 0);
    a.wait_for("onfail restarted", T, |a| {
        let c = container_status(&a.pod("onfail")?, "c")?;
        (c["restartCount"].as_i64()? >= 1).then_some(())
    });
    assert_eq!(a.pod("onfail").unwrap()["status"]["phase"], "Running");
    // /runningpods/ lists only pods with a running container: none of these.
    let running = a.get("/runningpods/").unwrap();
    assert!(
        !running.contains("never-") && !running.contains("ok-"),
        "{running}"
    );
}

#[test]
fn json_logging_and_runningpods() {
    let a = Agent::start(&["--logging-format=json"]);
    a.write_manifest("sleeper.yaml", SLEEPER);
    a.wait_running("sleeper", "main", T);
    let lines: Vec<serde_json::Value> = a
        .agent_log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let v = lines
        .iter()
        .find(|v| v["message"] == "container started")
        .expect("a `container started` line");
    assert_eq!(v["container"], "main");
    assert!(v["pod"].as_str().unwrap().starts_with("sleeper-"));
    let running: serde_json::Value =
        serde_json::from_str(&a.get("/runningpods/").unwrap()).unwrap();
    let item = &running["items"][0];
    assert!(
        item["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("sleeper-")
    );
    assert_eq!(item["spec"]["containers"][0]["name"], "main");
}

#[test]
fn logs_rotate_compress_prune_and_are_linked() {
    let a = Agent::start(&[
        "--container-log-max-size=4Ki",
        "--container-log-max-files=3",
    ]);
    a.write_manifest(
        "chatty.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: chatty}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'i=0; while true; do echo line $i; i=$((i+1)); sleep 0.002; done']}\n",
    );
    a.wait_running("chatty", "c", T);
    let pod = a.pod("chatty").unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let uid = uid_of(&pod);
    let dir = a.logs_dir.join(format!("default_{name}_{uid}/c"));
    // The shim rotates at 4 KiB; the agent's housekeeping (every 10 s) gzips all but the newest
    // rotated file and keeps at most 3 files.
    let files = a.wait_for(
        "compressed and pruned logs",
        Duration::from_secs(30),
        |_| {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .ok()?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.ends_with(".tmp"))
                .collect();
            names.sort();
            (names.iter().any(|n| n.ends_with(".gz")) && names.len() <= 3).then_some(names)
        },
    );
    assert!(files.contains(&"0.log".to_string()), "{files:?}");
    // The /var/log/containers-style symlink points at the live log.
    let link = std::fs::read_dir(&a.containers_log_dir)
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}_default_c-"))
        })
        .expect("container log symlink");
    assert_eq!(std::fs::read_link(link.path()).unwrap(), dir.join("0.log"));
}

#[test]
fn a_container_that_cannot_start_is_retried_with_backoff() {
    let a = Agent::start(&[]);
    a.write_manifest(
        "missing.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: missing}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [/nonexistent/binary]}\n",
    );
    // First RunContainerError, then an immediate retry that fails again, then CrashLoopBackOff.
    let c = a.wait_for("CrashLoopBackOff after failed starts", T, |a| {
        let c = container_status(&a.pod("missing")?, "c")?;
        (c["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(c)
    });
    assert!(c["restartCount"].as_i64().unwrap() >= 1, "{c}");
    let last = &c["lastState"]["terminated"];
    assert_eq!(last["reason"], "StartError");
    assert_eq!(last["exitCode"], 128);
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/binary"),
        "{last}"
    );
}

#[test]
fn configz_serves_the_effective_configuration() {
    let a = Agent::start(&["--max-pods=42"]);
    let v: serde_json::Value = serde_json::from_str(&a.get("/configz").unwrap()).unwrap();
    let k = &v["kubeletconfig"];
    assert_eq!(k["maxPods"], 42);
    assert_eq!(k["staticPodPath"], a.manifests.display().to_string());
    assert_eq!(k["failSwapOn"], true);
}

/// The crash-loop back-off is node-wide (`kl.backOff`), keyed by pod full name, UID, container
/// and spec hash: removing the manifest and putting the identical one back (same UID) keeps the
/// delay. A fresh worker would restart the first crash at once (restartCount 1); with the kept
/// entry the first crash of the new pod already waits "back-off 10s" at restartCount 0.
#[test]
fn crash_loop_back_off_survives_removing_and_restoring_the_manifest() {
    let a = Agent::start(&[]);
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  containers:\n  - {name: c, image: localhost/busybox:test, command: [sh, -c, 'exit 3']}\n";
    a.write_manifest("crash.yaml", text);
    let first = a.wait_for("back-off 10s after the first immediate restart", T, |a| {
        let p = a.pod("crash")?;
        let c = container_status(&p, "c")?;
        let msg = c["state"]["waiting"]["message"].as_str()?;
        msg.contains("back-off 10s").then_some(uid_of(&p))
    });
    a.remove_manifest("crash.yaml");
    a.wait_for("the pod gone", T, |a| {
        a.pod("crash").is_none().then_some(())
    });
    a.write_manifest("crash.yaml", text);
    let c = a.wait_for("the identical pod's first crash", T, |a| {
        let p = a.pod("crash")?;
        assert_eq!(uid_of(&p), first, "the identical manifest has the same UID");
        let c = container_status(&p, "c")?;
        (c["state"]["waiting"]["reason"] == "CrashLoopBackOff" || c["restartCount"].as_i64()? >= 1)
            .then_some(c)
    });
    assert_eq!(
        c["restartCount"], 0,
        "restarted at once: back-off reset {c}"
    );
    let msg = c["state"]["waiting"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("back-off 10s restarting failed container=c"),
        "{msg}"
    );
}

/// Probe start jitter only while the agent is younger than one period (kubelet `prober/worker.go`):
/// a pod added to an agent that has run longer than its probe's period is probed at once, so
/// it is Ready well within the period (a jittered first probe would wait up to 6 s).
#[test]
fn a_pod_added_to_a_running_agent_is_probed_without_jitter() {
    let a = Agent::start(&[]);
    std::thread::sleep(Duration::from_millis(6500));
    a.write_manifest(
        "ready.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ready}\nspec:\n  containers:\n  - name: c\n    image: localhost/busybox:test\n    command: [sleep, '300']\n    readinessProbe: {exec: {command: ['true']}, periodSeconds: 6}\n",
    );
    a.wait_running("ready", "c", T);
    let t = std::time::Instant::now();
    a.wait_for("ready", T, |a| {
        (container_status(&a.pod("ready")?, "c")?["ready"] == true).then_some(())
    });
    let took = t.elapsed();
    assert!(took < Duration::from_millis(1500), "Ready after {took:?}");
}
