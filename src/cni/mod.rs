//! CNI: giving a pod's network namespace its network through the real CNI plugins, as
//! containerd does for the kubelet. A library: the pod sandbox calls it (not yet wired in;
//! `docs/networking.md` says what is).
//!
//! Mirrors libcni (`containernetworking/cni`: `libcni/api.go` `AddNetworkList`,
//! `DelNetworkList`, `CheckNetworkList`, `GetVersionInfo`, the result cache; `pkg/invoke`) and
//! go-cni as containerd's `sandbox_run.go` `setupPodNetwork` uses it: one network, the
//! lexically first config of the conf dir, `CNI_ARGS` with the pod's name, namespace, UID and
//! sandbox ID, `portMappings` for hostPorts, and the pod IP read from the `eth0` interface.
//!
//! One call, step by step ([`Cni::add`]): every plugin of the list in order, each with the
//! list's `name` and `cniVersion`, the previous plugin's result as `prevResult`, and in
//! `runtimeConfig` only the capability arguments it declares; the last result is cached on
//! disk ([`cache`]) and parsed ([`result`]). [`Cni::del`] walks the list backwards with the
//! cached result, and removes the cache entry.
//!
//! The calls block (the plugins are processes, bounded by [`CniOptions::timeout`]); an async
//! caller runs them with `spawn_blocking`. Plugins run in the caller's network namespace: the
//! bridge and the host end of each veth are made there, so the agent calls from the node's
//! (and `tests/cni.rs` from a thread that `setns`'d into a test namespace).
//!
//! Dependencies go one way: `config`, `result` ← `invoke`, `cache`, `default_net` ← this file.

pub mod cache;
pub mod config;
pub mod default_net;
pub mod invoke;
pub mod result;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub use cache::{CachedAttachment, DEFAULT_CACHE_DIR};
pub use config::{DEFAULT_CONF_DIR, NetworkConfigList, PluginConf};
pub use default_net::{
    DEFAULT_BRIDGE, DEFAULT_CONFLIST_FILE, DEFAULT_NETWORK_NAME, DefaultNetwork, HairpinMode,
    bridge_hairpin_mode, default_conflist, write_default_conflist,
};
pub use invoke::PluginError;
pub use result::{CniResult, ResultError};

/// The kubelet's `--cni-bin-dir` default and containerd's, then where Debian's
/// `containernetworking-plugins` puts them.
pub const DEFAULT_BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// The pod's interface, as containerd names it (`defaultIfName`).
pub const DEFAULT_IFNAME: &str = "eth0";

/// How long one plugin call may take before it is killed with its children. The measured
/// calls take 4 ms (loopback) to 180 ms (portmap DEL with rules, iptables-nft); an
/// `iptables` waiting on the xtables lock of a busy node takes seconds. Shorter fails pods on a
/// slow node; longer holds a pod worker on a hung plugin. Three plugins at this bound still
/// finish inside the kubelet's 2-minute `--runtime-request-timeout` for `RunPodSandbox`
/// (libcni itself has no timeout but the caller's context).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors, each naming the file, network or plugin it is about.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("reading CNI conf dir {dir}: {source}")]
    ConfigDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading CNI config {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI config {path} is larger than {max} bytes: is it a network config?")]
    ConfigTooLarge { path: PathBuf, max: u64 },
    #[error("CNI config {path} is not valid JSON: {source}")]
    ConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("CNI config {path}: field {field:?} {why}: {fix}")]
    ConfigInvalid {
        path: PathBuf,
        field: String,
        why: String,
        fix: String,
    },
    /// A container ID, interface name or argument libcni would refuse (`pkg/utils`).
    #[error("invalid {what} {value:?}: {why}")]
    InvalidRuntimeConf {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    /// A plugin of the list failed: libcni's message, `plugin type="bridge" failed (add): ...`
    /// (with ` name="..."` when the plugin's own config has a name).
    #[error("plugin {} failed ({}): {source}", describe(plugin_type, plugin_name.as_deref()), command.verb())]
    Plugin {
        network: String,
        plugin_type: String,
        plugin_name: Option<String>,
        command: Command,
        #[source]
        source: Box<PluginError>,
    },
    /// libcni: `failed to set network "pods" cached result: ...`, and on reading it back.
    #[error("network {network:?} cached result {path}: {source}")]
    Cache {
        network: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration version {version:?} does not support the CHECK command")]
    CheckNotSupported { version: String },
    #[error(
        "plugin {plugin:?} does not support config version {version:?} (it supports {supported:?})"
    )]
    VersionNotSupported {
        plugin: String,
        version: String,
        supported: Vec<String>,
    },
    #[error("--pod-cidr {cidr:?}: {why}")]
    PodCidr { cidr: String, why: String },
    #[error("writing CNI config {path}: {source}")]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// libcni's `pluginDescription`.
/// Writes `bytes` to `path` so that a reader never sees half of it: a temporary `.<name>.tmp`
/// beside it (not a name libcni reads as a config), `mode`, fsync, then `rename`. The fsync
/// makes the data reach the disk before the name does: a cached result must still be there for
/// the DEL after a power loss, and a config is written once per node.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn describe(plugin_type: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("type={plugin_type:?} name={n:?}"),
        _ => format!("type={plugin_type:?}"),
    }
}

/// The CNI verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Check,
    Del,
    Version,
}

impl Command {
    /// `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
            Command::Version => "VERSION",
        }
    }

    /// The word in libcni's "failed (...)" messages.
    fn verb(self) -> &'static str {
        match self {
            Command::Add => "add",
            Command::Check => "check",
            Command::Del => "delete",
            Command::Version => "version",
        }
    }
}

/// The message containerd gives the kubelet when the network of sandbox `sandbox_id` cannot be
/// set up (`sandbox_run.go`); the kubelet's `FailedCreatePodSandBox` event reads
/// `Failed to create pod sandbox: rpc error: code = Unknown desc = <this>`.
pub fn setup_error_message(sandbox_id: &str, err: &CniError) -> String {
    format!("failed to setup network for sandbox {sandbox_id:?}: {err}")
}

/// Where plugins, the cache and the time limit are.
#[derive(Clone, Debug)]
pub struct CniOptions {
    /// Searched in order for a plugin's binary; also `CNI_PATH`, `:`-joined.
    pub bin_dirs: Vec<PathBuf>,
    /// Holds `results/` ([`DEFAULT_CACHE_DIR`], libcni's).
    pub cache_dir: PathBuf,
    /// Per plugin call ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl Default for CniOptions {
    fn default() -> CniOptions {
        CniOptions {
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A hostPort (containerd's `cni.PortMapping`, from the CRI's `PortMapping`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (lower case, as containerd sends it).
    pub protocol: String,
    /// `hostIP` of the port; empty: all the node's addresses.
    pub host_ip: String,
}

/// What one call is about (libcni's `RuntimeConf`).
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`: the sandbox's ID.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the pinned network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME` ([`DEFAULT_IFNAME`]).
    pub ifname: String,
    /// `CNI_ARGS`, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments by capability name (`portMappings`, `bandwidth`, `dns`,
    /// `ipRanges`, ...): each reaches only the plugins that declare it.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// A pod's call as containerd makes it: ifname `eth0` and `CNI_ARGS`
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID`,
    /// `IgnoreUnknown=1` (the order of `toCNILabels`' source: containerd ranges over a Go
    /// map, so its order varies from call to call; plugins parse by key).
    pub fn for_pod(
        sandbox_id: &str,
        netns: &Path,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> RuntimeConf {
        RuntimeConf {
            container_id: sandbox_id.to_string(),
            netns: netns.to_path_buf(),
            ifname: DEFAULT_IFNAME.to_string(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), namespace.into()),
                ("K8S_POD_NAME".into(), name.into()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), sandbox_id.into()),
                ("K8S_POD_UID".into(), uid.into()),
                ("IgnoreUnknown".into(), "1".into()),
            ],
            capability_args: Map::new(),
        }
    }

    /// Adds the `portMappings` capability argument for the ports with a host port (none: no
    /// argument, as containerd's `toCNIPortMappings` + `WithCapabilityPortMap`).
    pub fn with_port_mappings(mut self, ports: &[PortMapping]) -> RuntimeConf {
        let mappings: Vec<Value> = ports
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                serde_json::json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.to_ascii_lowercase(),
                    "hostIP": p.host_ip,
                })
            })
            .collect();
        if !mappings.is_empty() {
            self.capability_args
                .insert("portMappings".into(), Value::Array(mappings));
        }
        self
    }

    /// `namespace/name` from the args, for logs ("" if not a pod's call).
    fn pod(&self) -> String {
        let get = |k: &str| {
            self.args
                .iter()
                .find(|(kk, _)| kk == k)
                .map_or("", |(_, v)| v.as_str())
        };
        match (get("K8S_POD_NAMESPACE"), get("K8S_POD_NAME")) {
            ("", "") => String::new(),
            (ns, n) => format!("{ns}/{n}"),
        }
    }

    /// libcni's checks (`ValidateContainerID`, `ValidateInterfaceName`), and no `;` or `=`
    /// inside an argument (it would split `CNI_ARGS` wrongly).
    fn validate(&self) -> Result<(), CniError> {
        let bad = |what, value: &str, why| {
            Err(CniError::InvalidRuntimeConf {
                what,
                value: value.to_string(),
                why,
            })
        };
        if !config::valid_name(&self.container_id) {
            return bad(
                "container ID",
                &self.container_id,
                "letters, digits, '_', '.', '-', starting with a letter or digit",
            );
        }
        let i = &self.ifname;
        if i.is_empty()
            || i.len() > 15
            || i == "."
            || i == ".."
            || i.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return bad(
                "interface name",
                i,
                "1 to 15 bytes, not . or .., no '/', ':' or whitespace",
            );
        }
        for (k, v) in &self.args {
            if k.is_empty() || k.contains(['=', ';']) || v.contains(';') {
                return bad(
                    "CNI_ARGS entry",
                    &format!("{k}={v}"),
                    "no ';' anywhere, no '=' in the key",
                );
            }
        }
        Ok(())
    }
}

/// What ADD gave the pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodNetworkResult {
    /// The last plugin's result (the one cached).
    pub result: CniResult,
    /// The pod's IPs, the `podIPs` order: see [`CniResult::pod_ips`]. Empty if the plugins
    /// put no address on the pod's interface (containerd then fails the sandbox with
    /// `failed to find network info for sandbox`).
    pub pod_ips: Vec<IpAddr>,
}

/// A plugin's `VERSION` answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginVersions {
    pub cni_version: String,
    #[serde(default)]
    pub supported_versions: Vec<String>,
}

/// Calls plugins (libcni's `CNIConfig`). Holds no state but its options: the cache on disk is
/// the state, so a new `Cni` (after an agent restart) deletes what an old one added.
#[derive(Clone, Debug)]
pub struct Cni {
    opts: CniOptions,
}

impl Cni {
    /// A client with `opts`; nothing is read or checked until a call.
    pub fn new(opts: CniOptions) -> Cni {
        Cni { opts }
    }

    /// The options it was made with.
    pub fn options(&self) -> &CniOptions {
        &self.opts
    }

    /// ADD: every plugin of `net` in order; the last result is cached and returned with the
    /// pod IPs. A failure leaves what the earlier plugins did: call [`Cni::del`] then, as
    /// containerd does when `setupPodNetwork` fails.
    pub fn add(
        &self,
        net: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<PodNetworkResult, CniError> {
        rt.validate()?;
        let start = Instant::now();
        let mut prev: Option<Value> = None;
        let mut last: Option<CniResult> = None;
        for plugin in &net.plugins {
            let stdout = self.call(Command::Add, net, plugin, prev.as_ref(), rt)?;
            let result = CniResult::parse(&stdout, &net.cni_version)
                .map_err(|e| plugin_error(net, plugin, Command::Add, e.into()))?;
            prev = Some(result.raw().clone());
            last = Some(result);
        }
        // `plugins` is never empty (checked at load), so there is a last result.
        let Some(result) = last else {
            return Err(CniError::ConfigInvalid {
                path: net.source.clone().unwrap_or_default(),
                field: "plugins".into(),
                why: "is empty".into(),
                fix: "list at least one plugin".into(),
            });
        };
        let entry = CachedAttachment::new(
            &rt.container_id,
            &net.bytes,
            &rt.ifname,
            &net.name,
            &rt.netns,
            &rt.args,
            &rt.capability_args,
            result.raw(),
        );
        entry.write(&self.opts.cache_dir)?;
        let pod_ips = result.pod_ips(&rt.ifname);
        tracing::info!(
            pod = %rt.pod(),
            container_id = %rt.container_id,
            network = %net.name,
            ifname = %rt.ifname,
            pod_ips = ?pod_ips,
            elapsed_ms = start.elapsed().as_millis() as u64,
            "CNI ADD done"
        );
        Ok(PodNetworkResult { result, pod_ips })
    }

    /// CHECK (spec 0.4.0 and later; nothing if the network says `disableCheck`): every plugin
    /// in order, with the cached result as `prevResult`.
    pub fn check(&self, net: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        if !config::version_at_least(&net.cni_version, (0, 4, 0)) {
            return Err(CniError::CheckNotSupported {
                version: net.cni_version.clone(),
            });
        }
        if net.disable_check {
            return Ok(());
        }
        rt.validate()?;
        let cached = CachedAttachment::read(
            &self.opts.cache_dir,
            &net.name,
            &rt.container_id,
            &rt.ifname,
        )?;
        let prev = cached.map(|c| c.result).filter(|r| !r.is_null());
        for plugin in &net.plugins {
            self.call(Command::Check, net, plugin, prev.as_ref(), rt)?;
        }
        Ok(())
    }

    /// DEL: every plugin in reverse order, with the cached result as `prevResult` (spec 0.4.0
    /// and later), then the cache entry is removed. With no cache entry (or an unreadable one)
    /// the plugins are still called, without `prevResult`, as libcni does: DEL must clean up
    /// what it can. The capability arguments are the cached ones when `rt` has none (an agent
    /// that restarted may no longer know the pod's hostPorts).
    pub fn del(&self, net: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        rt.validate()?;
        let start = Instant::now();
        let cached = match CachedAttachment::read(
            &self.opts.cache_dir,
            &net.name,
            &rt.container_id,
            &rt.ifname,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(container_id = %rt.container_id, network = %net.name, error = %e,
                        "CNI result cache unreadable; DEL without prevResult");
                None
            }
        };
        let mut rt = rt.clone();
        if let Some(c) = &cached
            && rt.capability_args.is_empty()
        {
            rt.capability_args = c.capability_args.clone();
        }
        let prev = cached
            .map(|c| c.result)
            .filter(|r| !r.is_null() && config::version_at_least(&net.cni_version, (0, 4, 0)));
        for plugin in net.plugins.iter().rev() {
            self.call(Command::Del, net, plugin, prev.as_ref(), &rt)?;
        }
        CachedAttachment::remove(
            &self.opts.cache_dir,
            &net.name,
            &rt.container_id,
            &rt.ifname,
        )?;
        tracing::info!(
            pod = %rt.pod(),
            container_id = %rt.container_id,
            network = %net.name,
            ifname = %rt.ifname,
            had_cache = prev.is_some(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "CNI DEL done"
        );
        Ok(())
    }

    /// The cache entry of an attachment, if any: its config (the network as it was at ADD),
    /// arguments and result (libcni's `GetNetworkListCachedConfig`/`...CachedResult`).
    pub fn cached(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        if !config::valid_name(network) || !config::valid_name(container_id) || ifname.contains('/')
        {
            return Ok(None);
        }
        CachedAttachment::read(&self.opts.cache_dir, network, container_id, ifname)
    }

    /// VERSION of a plugin (libcni's `GetVersionInfo`).
    pub fn version(&self, plugin_type: &str) -> Result<PluginVersions, CniError> {
        let wrap = |source| CniError::Plugin {
            network: String::new(),
            plugin_type: plugin_type.to_string(),
            plugin_name: None,
            command: Command::Version,
            source: Box::new(source),
        };
        let path = invoke::find_plugin(plugin_type, &self.opts.bin_dirs).map_err(wrap)?;
        // libcni sets dummy values "required by plugins built against an older version of skel".
        let env = invoke::plugin_env(
            "VERSION",
            "",
            Path::new("dummy"),
            "dummy",
            &[],
            &self.opts.bin_dirs,
        );
        let stdout = invoke::exec(&path, &env, br#"{"cniVersion":"1.0.0"}"#, self.opts.timeout)
            .map_err(wrap)?;
        serde_json::from_slice(&stdout).map_err(|e| {
            wrap(PluginError::BadVersion {
                output: String::from_utf8_lossy(&stdout).chars().take(200).collect(),
                why: e.to_string(),
            })
        })
    }

    /// Each plugin of `net` supports the list's `cniVersion` (libcni's `ValidateNetworkList`,
    /// less its check of the plugins' own config keys): Debian's plugins 1.1.1 stop at 1.0.0.
    pub fn validate(&self, net: &NetworkConfigList) -> Result<(), CniError> {
        for plugin in &net.plugins {
            let v = self.version(&plugin.plugin_type)?;
            if !v.supported_versions.contains(&net.cni_version) {
                return Err(CniError::VersionNotSupported {
                    plugin: plugin.plugin_type.clone(),
                    version: net.cni_version.clone(),
                    supported: v.supported_versions,
                });
            }
        }
        Ok(())
    }

    /// One plugin call: its stdin built, its binary found, run within the timeout.
    fn call(
        &self,
        command: Command,
        net: &NetworkConfigList,
        plugin: &PluginConf,
        prev: Option<&Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, CniError> {
        let path = invoke::find_plugin(&plugin.plugin_type, &self.opts.bin_dirs)
            .map_err(|e| plugin_error(net, plugin, command, e))?;
        // A `Value` always serializes (its map keys are strings).
        let stdin = plugin_stdin(net, plugin, prev, &rt.capability_args)
            .to_string()
            .into_bytes();
        let env = invoke::plugin_env(
            command.as_str(),
            &rt.container_id,
            &rt.netns,
            &rt.ifname,
            &rt.args,
            &self.opts.bin_dirs,
        );
        let start = Instant::now();
        let out = invoke::exec(&path, &env, &stdin, self.opts.timeout);
        let elapsed_ms = start.elapsed().as_millis() as u64;
        match out {
            Ok(stdout) => {
                tracing::debug!(pod = %rt.pod(), container_id = %rt.container_id, network = %net.name,
                    plugin = %plugin.plugin_type, command = command.as_str(), elapsed_ms, "CNI plugin call");
                Ok(stdout)
            }
            Err(e) => {
                let stderr = match &e {
                    PluginError::Failed { stderr, .. }
                    | PluginError::FailedNoObject { stderr, .. } => stderr.as_str(),
                    _ => "",
                };
                tracing::warn!(pod = %rt.pod(), container_id = %rt.container_id, network = %net.name,
                    plugin = %plugin.plugin_type, command = command.as_str(), elapsed_ms,
                    error = %e, stderr, "CNI plugin call failed");
                Err(plugin_error(net, plugin, command, e))
            }
        }
    }
}

fn plugin_error(
    net: &NetworkConfigList,
    plugin: &PluginConf,
    command: Command,
    source: PluginError,
) -> CniError {
    CniError::Plugin {
        network: net.name.clone(),
        plugin_type: plugin.plugin_type.clone(),
        plugin_name: plugin.name.clone(),
        command,
        source: Box::new(source),
    }
}

/// A plugin's stdin (libcni's `buildOneConfig` + `injectRuntimeConfig`): its own config with
/// the list's `name` and `cniVersion`, `prevResult` if there is one, and `runtimeConfig` with
/// the capability arguments it declares (left out if none: a plugin's own `runtimeConfig`
/// stays then, as with libcni).
pub fn plugin_stdin(
    net: &NetworkConfigList,
    plugin: &PluginConf,
    prev: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Value {
    let mut conf = plugin.raw.clone();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let runtime: Map<String, Value> = plugin
        .capabilities
        .iter()
        .filter_map(|c| capability_args.get(c).map(|v| (c.clone(), v.clone())))
        .collect();
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    Value::Object(conf)
}

#[cfg(test)]
mod tests;
