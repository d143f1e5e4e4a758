//! The call sequence through fake plugins: shell scripts in a temp bin dir that record their
//! stdin, environment and order, and print a result or a CNI error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        for d in ["bin", "rec", "cache"] {
            std::fs::create_dir(f.dir.path().join(d)).unwrap();
        }
        f
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn rec(&self) -> PathBuf {
        self.dir.path().join("rec")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn cni(&self) -> Cni {
        Cni::new(CniOptions {
            bin_dirs: vec![self.dir.path().join("empty"), self.bin()],
            cache_dir: self.cache(),
            timeout: Duration::from_secs(10),
        })
    }

    fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.bin().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A plugin that records `<name>-<CMD>.stdin`/`.env`, appends its call to `calls`, and on
    /// ADD prints a 1.0.0 result giving eth0 `ip`.
    fn recorder(&self, name: &str, ip: &str) {
        let rec = self.rec().display().to_string();
        self.script(
            name,
            &format!(
                r#"cat > "{rec}/{name}-$CNI_COMMAND.stdin"
env > "{rec}/{name}-$CNI_COMMAND.env"
echo "{name} $CNI_COMMAND" >> "{rec}/calls"
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"veth9"}},{{"name":"eth0","sandbox":"'"$CNI_NETNS"'"}}],"ips":[{{"interface":1,"address":"{ip}/24","gateway":"10.1.0.1"}}],"routes":[{{"dst":"0.0.0.0/0"}}]}}'
exit 0"#
            ),
        );
    }

    fn stdin_of(&self, name: &str, cmd: &str) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.rec().join(format!("{name}-{cmd}.stdin"))).unwrap(),
        )
        .unwrap()
    }

    fn env_of(&self, name: &str, cmd: &str) -> Vec<(String, String)> {
        std::fs::read_to_string(self.rec().join(format!("{name}-{cmd}.env")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.rec().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn network(&self, version: &str, plugins: Value) -> NetworkConfigList {
        let v = json!({"cniVersion": version, "name": "pods", "plugins": plugins});
        NetworkConfigList::from_value(&v, Path::new("<test>")).unwrap()
    }
}

fn pod_rt() -> RuntimeConf {
    RuntimeConf::for_pod("sb1", Path::new("/run/netns/test"), "shop", "web", "uid-1")
        .with_port_mappings(&[
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "TCP".into(),
                host_ip: String::new(),
            },
            PortMapping {
                host_port: 0,
                container_port: 9090,
                protocol: "TCP".into(),
                host_ip: String::new(),
            },
        ])
}

fn two_plugins(f: &Fixture) -> NetworkConfigList {
    f.recorder("first", "10.1.0.7");
    f.recorder("second", "10.1.0.8");
    f.network(
        "1.0.0",
        json!([
            {"type": "first", "mine": 1, "capabilities": {"portMappings": true, "bandwidth": true}},
            {"type": "second", "capabilities": {"portMappings": false}},
        ]),
    )
}

#[test]
fn add_injects_name_version_prev_result_and_declared_capabilities_only() {
    let f = Fixture::new();
    let net = two_plugins(&f);
    let rt = pod_rt();
    let got = f.cni().add(&net, &rt).unwrap();
    assert_eq!(f.calls(), ["first ADD", "second ADD"]);

    let first = f.stdin_of("first", "ADD");
    assert_eq!(first["name"], "pods");
    assert_eq!(first["cniVersion"], "1.0.0");
    assert_eq!(first["mine"], 1);
    assert!(first.get("prevResult").is_none());
    // Only the hostPort mapping, lower-cased; no bandwidth argument was given, so none is sent.
    assert_eq!(
        first["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]})
    );
    let second = f.stdin_of("second", "ADD");
    assert_eq!(second["prevResult"]["ips"][0]["address"], "10.1.0.7/24");
    assert!(second.get("runtimeConfig").is_none(), "{second}");

    let env = f.env_of("first", "ADD");
    let get = |k: &str| env.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    assert_eq!(get("CNI_COMMAND").as_deref(), Some("ADD"));
    assert_eq!(get("CNI_CONTAINERID").as_deref(), Some("sb1"));
    assert_eq!(get("CNI_NETNS").as_deref(), Some("/run/netns/test"));
    assert_eq!(get("CNI_IFNAME").as_deref(), Some("eth0"));
    assert_eq!(
        get("CNI_ARGS").as_deref(),
        Some(
            "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1;IgnoreUnknown=1"
        )
    );
    let cni_path = format!(
        "{}:{}",
        f.dir.path().join("empty").display(),
        f.bin().display()
    );
    assert_eq!(get("CNI_PATH"), Some(cni_path));
    assert!(
        get("HOME").is_none() && get("RUST_BACKTRACE").is_none(),
        "{env:?}"
    );

    // The last plugin's result is the pod's, and the cache's.
    assert_eq!(
        got.pod_ips,
        ["10.1.0.8".parse::<std::net::IpAddr>().unwrap()]
    );
    let cached = f.cni().cached("pods", "sb1", "eth0").unwrap().unwrap();
    assert_eq!(cached.result, *got.result.raw());
    assert_eq!(cached.config, net.bytes);
    assert_eq!(cached.netns, "/run/netns/test");
    assert_eq!(
        cached.cni_args[1],
        ["K8S_POD_NAME".to_string(), "web".to_string()]
    );
    assert_eq!(cached.capability_args, rt.capability_args);
}

#[test]
fn del_walks_back_with_the_cached_result_from_a_new_cni_and_is_idempotent() {
    let f = Fixture::new();
    let net = two_plugins(&f);
    f.cni().add(&net, &pod_rt()).unwrap();
    // A new Cni, and a RuntimeConf that no longer knows the pod's ports: as after a restart.
    let mut rt = pod_rt();
    rt.capability_args.clear();
    f.cni().del(&net, &rt).unwrap();
    assert_eq!(f.calls()[2..], ["second DEL", "first DEL"]);
    let first = f.stdin_of("first", "DEL");
    assert_eq!(first["prevResult"]["ips"][0]["address"], "10.1.0.8/24");
    assert_eq!(first["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    assert!(f.cni().cached("pods", "sb1", "eth0").unwrap().is_none());
    assert!(!f.cache().join("results/pods-sb1-eth0").exists());

    // Again: no cache, the plugins are still called, without prevResult.
    f.cni().del(&net, &rt).unwrap();
    assert_eq!(f.calls()[4..], ["second DEL", "first DEL"]);
    let first = f.stdin_of("first", "DEL");
    assert!(first.get("prevResult").is_none());
    assert!(first.get("runtimeConfig").is_none());
}

#[test]
fn del_of_a_0_3_1_network_sends_no_prev_result_and_check_is_refused() {
    let f = Fixture::new();
    f.recorder("lo", "10.1.0.9");
    let net = f.network("0.3.1", json!([{"type": "lo"}]));
    let rt = RuntimeConf::for_pod("sb2", Path::new("/x"), "a", "b", "c");
    f.cni().add(&net, &rt).unwrap();
    let err = f.cni().check(&net, &rt).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration version \"0.3.1\" does not support the CHECK command"
    );
    f.cni().del(&net, &rt).unwrap();
    assert!(f.stdin_of("lo", "DEL").get("prevResult").is_none());
}

#[test]
fn check_sends_the_cached_result_to_every_plugin_in_order() {
    let f = Fixture::new();
    let net = two_plugins(&f);
    let rt = pod_rt();
    f.cni().add(&net, &rt).unwrap();
    f.cni().check(&net, &rt).unwrap();
    assert_eq!(f.calls()[2..], ["first CHECK", "second CHECK"]);
    assert_eq!(
        f.stdin_of("first", "CHECK")["prevResult"]["ips"][0]["address"],
        "10.1.0.8/24"
    );
    let mut off = net.clone();
    off.disable_check = true;
    f.cni().check(&off, &rt).unwrap();
    assert_eq!(f.calls().len(), 4);
}

#[test]
fn a_plugin_error_reads_as_containerd_reports_it() {
    let f = Fixture::new();
    f.recorder("first", "10.1.0.7");
    f.script(
        "bridge",
        r#"cat >/dev/null; echo '{"code":7,"msg":"failed to set bridge addr","details":"could not add IP address to \"mkl0\": permission denied"}'; exit 1"#,
    );
    let net = f.network("1.0.0", json!([{"type": "first"}, {"type": "bridge"}]));
    let err = f.cni().add(&net, &pod_rt()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"plugin type="bridge" failed (add): failed to set bridge addr; could not add IP address to "mkl0": permission denied"#
    );
    assert_eq!(
        setup_error_message("sb1", &err),
        r#"failed to setup network for sandbox "sb1": plugin type="bridge" failed (add): failed to set bridge addr; could not add IP address to "mkl0": permission denied"#
    );
    // Nothing cached for a failed ADD.
    assert!(f.cni().cached("pods", "sb1", "eth0").unwrap().is_none());

    // A .conf-born list names the plugin as libcni does.
    let conf = NetworkConfigList::parse(
        br#"{"cniVersion":"1.0.0","name":"single","type":"bridge"}"#,
        Path::new("x.conf"),
        false,
    )
    .unwrap();
    let err = f.cni().add(&conf, &pod_rt()).unwrap_err().to_string();
    assert!(
        err.starts_with(r#"plugin type="bridge" name="single" failed (add): "#),
        "{err}"
    );
}

#[test]
fn a_missing_plugin_names_the_plugin_and_the_dirs() {
    let f = Fixture::new();
    let net = f.network("1.0.0", json!([{"type": "nope"}]));
    let err = f.cni().add(&net, &pod_rt()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "plugin type=\"nope\" failed (add): failed to find plugin \"nope\" in path [{} {}]",
            f.dir.path().join("empty").display(),
            f.bin().display()
        )
    );
    let err = f.cni().del(&net, &pod_rt()).unwrap_err().to_string();
    assert!(
        err.starts_with("plugin type=\"nope\" failed (delete): "),
        "{err}"
    );
}

#[test]
fn a_hanging_plugin_times_out_and_a_bad_result_is_refused() {
    let f = Fixture::new();
    f.script("hang", "sleep 30");
    f.script("liar", r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","interface":3}]}'"#);
    let mut cni = f.cni();
    cni.opts.timeout = Duration::from_millis(300);
    let net = f.network("1.0.0", json!([{"type": "hang"}]));
    let err = cni.add(&net, &pod_rt()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin type=\"hang\" failed (add): plugin did not finish within 300ms"),
        "{err}"
    );
    let net = f.network("1.0.0", json!([{"type": "liar"}]));
    let err = cni.add(&net, &pod_rt()).unwrap_err().to_string();
    assert!(
        err.contains("invalid result: result ips[0].interface"),
        "{err}"
    );
}

#[test]
fn runtime_conf_is_checked_as_libcni_checks_it() {
    let f = Fixture::new();
    let net = two_plugins(&f);
    type Change = fn(&mut RuntimeConf);
    let cases: [(Change, &str); 5] = [
        (|r| r.container_id = String::new(), "invalid container ID"),
        (|r| r.container_id = "../x".into(), "invalid container ID"),
        (
            |r| r.ifname = "a-name-too-long-x".into(),
            "invalid interface name",
        ),
        (|r| r.ifname = "eth/0".into(), "invalid interface name"),
        (
            |r| r.args.push(("A".into(), "x;B=y".into())),
            "invalid CNI_ARGS entry",
        ),
    ];
    for (change, want) in cases {
        let mut rt = pod_rt();
        change(&mut rt);
        let err = f.cni().add(&net, &rt).unwrap_err().to_string();
        assert!(err.starts_with(want), "{err}");
    }
    assert!(f.calls().is_empty());
}

#[test]
fn version_and_validate() {
    let f = Fixture::new();
    f.script(
        "old",
        r#"cat >/dev/null; [ "$CNI_COMMAND" = VERSION ] && echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'"#,
    );
    let v = f.cni().version("old").unwrap();
    assert_eq!(v.supported_versions, ["0.3.1", "0.4.0", "1.0.0"]);
    f.cni()
        .validate(&f.network("1.0.0", json!([{"type": "old"}])))
        .unwrap();
    let err = f
        .cni()
        .validate(&f.network("1.1.0", json!([{"type": "old"}])))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("plugin \"old\" does not support config version \"1.1.0\""),
        "{err}"
    );
}

#[test]
fn stdin_without_capability_args_keeps_the_plugins_own_runtime_config() {
    let f = Fixture::new();
    let net = f.network(
        "1.0.0",
        json!([{"type": "x", "capabilities": {"dns": true}, "runtimeConfig": {"own": 1}}]),
    );
    let none = plugin_stdin(&net, &net.plugins[0], None, &Map::new());
    assert_eq!(none["runtimeConfig"], json!({"own": 1}));
    let mut caps = Map::new();
    caps.insert("dns".into(), json!({"servers": ["10.96.0.10"]}));
    caps.insert("ipRanges".into(), json!([[{"subnet": "10.2.0.0/24"}]]));
    let some = plugin_stdin(
        &net,
        &net.plugins[0],
        Some(&json!({"cniVersion": "1.0.0"})),
        &caps,
    );
    assert_eq!(
        some["runtimeConfig"],
        json!({"dns": {"servers": ["10.96.0.10"]}})
    );
    assert_eq!(some["prevResult"], json!({"cniVersion": "1.0.0"}));
}
