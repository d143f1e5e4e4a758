//! Network configuration: which file of the conf dir is the pod network, and what it says.
//!
//! Mirrors libcni's `ConfFiles` + `ConfListFromBytes`/`ConfFromBytes`/`ConfListFromConf` and
//! go-cni's `loadFromConfDir` as containerd calls it with one network: the files `*.conf`,
//! `*.conflist` and `*.json` of the dir, sorted by name, and the first one is the network. A
//! `.conflist` is a list of plugins; any other is a single plugin's config, made into a list of
//! one. As in go-cni, a first file that does not parse is an error (not skipped for the next).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::CniError;

/// Where the kubelet (`--cni-conf-dir`) and containerd look for network configs.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// Largest config file read: real ones are a few hundred bytes; a bigger file is a mistake or
/// an attack, and would be copied into every result cache entry.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The extensions libcni's callers (go-cni, ocicni) pass to `ConfFiles`.
const EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// A network: the plugins to call in order, with the list's name and spec version
/// (libcni's `NetworkConfigList`).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfigList {
    /// The network's name: part of the result cache's file name, and `name` on every plugin's
    /// stdin.
    pub name: String,
    /// The spec version every plugin is called with (`cniVersion` on its stdin).
    pub cni_version: String,
    /// `disableCheck`: CHECK does nothing for this network.
    pub disable_check: bool,
    /// The plugins, in ADD order.
    pub plugins: Vec<PluginConf>,
    /// The list as JSON: what the result cache keeps as `config` (a `.conf` is kept in its
    /// list form, as libcni's `ConfListFromConf` makes it).
    pub bytes: Vec<u8>,
    /// The file it came from (`None`: made in code, like the loopback network).
    pub source: Option<PathBuf>,
}

/// One plugin of a network (libcni's `PluginConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct PluginConf {
    /// `type`: the binary's file name in one of the bin dirs.
    pub plugin_type: String,
    /// The plugin's own `name`, if it has one (only a `.conf` usually does); libcni names it
    /// in its error messages.
    pub name: Option<String>,
    /// The capabilities the plugin declares `true` (`"capabilities": {"portMappings": true}`):
    /// only these runtime arguments reach it, in `runtimeConfig`.
    pub capabilities: Vec<String>,
    /// The plugin's config object as written; `name`, `cniVersion`, `prevResult` and
    /// `runtimeConfig` are injected into a copy of it at each call.
    pub raw: Map<String, Value>,
}

impl NetworkConfigList {
    /// The network of `conf_dir`: its lexically first `*.conf`/`*.conflist`/`*.json` file.
    /// `Ok(None)` if the dir is missing or has none (containerd then reports "cni config not
    /// initialized"; the agent may write [`super::default_conflist`] there).
    pub fn load(conf_dir: &Path) -> Result<Option<NetworkConfigList>, CniError> {
        let entries = match std::fs::read_dir(conf_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(conf_dir = %conf_dir.display(), "no CNI conf dir");
                return Ok(None);
            }
            Err(source) => {
                return Err(CniError::ConfigDir {
                    dir: conf_dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| CniError::ConfigDir {
                dir: conf_dir.to_path_buf(),
                source,
            })?;
            // As `ConfFiles`: directories are skipped (by the entry's own type, so a symlink
            // counts as a file and is followed when read).
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if EXTENSIONS.contains(&ext) {
                files.push(path);
            }
        }
        files.sort();
        let Some(first) = files.first() else {
            tracing::debug!(conf_dir = %conf_dir.display(), "no CNI network config in the conf dir");
            return Ok(None);
        };
        let net = NetworkConfigList::from_file(first)?;
        tracing::info!(
            conf_dir = %conf_dir.display(),
            file = %first.display(),
            network = %net.name,
            cni_version = %net.cni_version,
            plugins = ?net.plugins.iter().map(|p| p.plugin_type.as_str()).collect::<Vec<_>>(),
            ignored = ?files[1..].iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "CNI network config chosen: the lexically first *.conf/*.conflist/*.json (libcni's rule)"
        );
        Ok(Some(net))
    }

    /// One config file, at most [`MAX_CONFIG_BYTES`]: a list if it ends in `.conflist`, else
    /// a single plugin's config.
    pub fn from_file(path: &Path) -> Result<NetworkConfigList, CniError> {
        let read_err = |source| CniError::ConfigRead {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(CniError::ConfigTooLarge {
                path: path.to_path_buf(),
                max: MAX_CONFIG_BYTES,
            });
        }
        let is_list = path.extension().is_some_and(|e| e == "conflist");
        NetworkConfigList::parse(&bytes, path, is_list)
    }

    /// A list from JSON made in code (`origin` names it in errors), e.g. the value of
    /// [`super::default_conflist`].
    pub fn from_value(value: &Value, origin: &Path) -> Result<NetworkConfigList, CniError> {
        let bytes = serde_json::to_vec(value).map_err(|source| CniError::ConfigJson {
            path: origin.to_path_buf(),
            source,
        })?;
        let mut net = NetworkConfigList::parse(&bytes, origin, true)?;
        net.source = None;
        Ok(net)
    }

    /// go-cni's `cni-loopback` network (`WithLoNetwork`): the `loopback` plugin alone, spec
    /// 0.3.1, to be called with ifname `lo`. containerd adds it beside the pod network unless
    /// `use_internal_loopback` brings `lo` up in-process.
    pub fn loopback() -> NetworkConfigList {
        let bytes =
            br#"{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;
        let mut raw = Map::new();
        raw.insert("type".into(), Value::String("loopback".into()));
        NetworkConfigList {
            name: "cni-loopback".into(),
            cni_version: "0.3.1".into(),
            disable_check: false,
            plugins: vec![PluginConf {
                plugin_type: "loopback".into(),
                name: None,
                capabilities: Vec::new(),
                raw,
            }],
            bytes: bytes.to_vec(),
            source: None,
        }
    }

    /// Parse and validate: a list (`is_list`) or a single plugin config made into a list.
    pub(crate) fn parse(
        bytes: &[u8],
        path: &Path,
        is_list: bool,
    ) -> Result<NetworkConfigList, CniError> {
        let invalid = |field: &str, why: String, fix: &str| CniError::ConfigInvalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            why,
            fix: fix.to_string(),
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|source| CniError::ConfigJson {
                path: path.to_path_buf(),
                source,
            })?;
        let Value::Object(mut obj) = value else {
            return Err(invalid(
                "",
                "the file is not a JSON object".into(),
                "write one object: {\"cniVersion\": ..., \"name\": ..., ...}",
            ));
        };
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.clone(),
            Some(_) => {
                return Err(invalid(
                    "name",
                    "is not a string".into(),
                    "give the network a name such as \"pods\"",
                ));
            }
            None => {
                return Err(invalid(
                    "name",
                    "is missing".into(),
                    "give the network a name such as \"pods\"",
                ));
            }
        };
        if !valid_name(&name) {
            return Err(invalid(
                "name",
                format!("{name:?} has characters a network name cannot have"),
                "use letters, digits, '_', '.' and '-', starting with a letter or digit",
            ));
        }
        let cni_version = match obj.get("cniVersion") {
            Some(Value::String(v)) if parse_version(v).is_some() => v.clone(),
            Some(v) => {
                return Err(invalid(
                    "cniVersion",
                    format!("{v} is not a version"),
                    "write the spec version as \"1.0.0\" (the highest Debian's plugins 1.1.1 support)",
                ));
            }
            None => {
                return Err(invalid(
                    "cniVersion",
                    "is missing".into(),
                    "add \"cniVersion\": \"1.0.0\"",
                ));
            }
        };
        let disable_check = match obj.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            // libcni also takes the strings "true"/"false".
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(invalid(
                    "disableCheck",
                    format!("{v} is not a boolean"),
                    "write true or false",
                ));
            }
        };
        let raw_plugins: Vec<Map<String, Value>> = if is_list {
            match obj.remove("plugins") {
                Some(Value::Array(ps)) if ps.is_empty() => {
                    return Err(invalid(
                        "plugins",
                        "is empty".into(),
                        "list at least one plugin, e.g. [{\"type\": \"bridge\", ...}]",
                    ));
                }
                Some(Value::Array(ps)) => {
                    let mut out = Vec::with_capacity(ps.len());
                    for (i, p) in ps.into_iter().enumerate() {
                        match p {
                            Value::Object(m) => out.push(m),
                            _ => {
                                return Err(invalid(
                                    &format!("plugins[{i}]"),
                                    "is not an object".into(),
                                    "write each plugin as {\"type\": ..., ...}",
                                ));
                            }
                        }
                    }
                    out
                }
                Some(_) => {
                    return Err(invalid(
                        "plugins",
                        "is not a list".into(),
                        "write \"plugins\": [{\"type\": ...}, ...]",
                    ));
                }
                None => {
                    return Err(invalid(
                        "plugins",
                        "is missing".into(),
                        "a .conflist needs \"plugins\": [...]; a single plugin's config goes in a .conf file",
                    ));
                }
            }
        } else {
            if !obj.contains_key("type") && obj.contains_key("plugins") {
                return Err(invalid(
                    "type",
                    "is missing (the file has a \"plugins\" list)".into(),
                    "name a file with a plugin list *.conflist",
                ));
            }
            vec![obj.clone()]
        };
        let mut plugins = Vec::with_capacity(raw_plugins.len());
        for (i, raw) in raw_plugins.into_iter().enumerate() {
            let field = |f: &str| {
                if is_list {
                    format!("plugins[{i}].{f}")
                } else {
                    f.to_string()
                }
            };
            let plugin_type = match raw.get("type") {
                Some(Value::String(t)) => t.clone(),
                Some(_) => {
                    return Err(invalid(
                        &field("type"),
                        "is not a string".into(),
                        "name the plugin binary, e.g. \"bridge\"",
                    ));
                }
                None => {
                    return Err(invalid(
                        &field("type"),
                        "is missing".into(),
                        "name the plugin binary, e.g. \"bridge\"",
                    ));
                }
            };
            if !valid_plugin_type(&plugin_type) {
                return Err(invalid(
                    &field("type"),
                    format!("{plugin_type:?} is not a plain file name"),
                    "name the binary only (\"bridge\"); the bin dirs say where it is",
                ));
            }
            let capabilities = match raw.get("capabilities") {
                None => Vec::new(),
                Some(Value::Object(caps)) => {
                    let mut out = Vec::new();
                    for (k, v) in caps {
                        match v {
                            Value::Bool(true) => out.push(k.clone()),
                            Value::Bool(false) => {}
                            _ => {
                                return Err(invalid(
                                    &field(&format!("capabilities.{k}")),
                                    format!("{v} is not a boolean"),
                                    "write true or false",
                                ));
                            }
                        }
                    }
                    out
                }
                Some(_) => {
                    return Err(invalid(
                        &field("capabilities"),
                        "is not an object".into(),
                        "write e.g. {\"portMappings\": true}",
                    ));
                }
            };
            let name = raw.get("name").and_then(Value::as_str).map(str::to_string);
            plugins.push(PluginConf {
                plugin_type,
                name,
                capabilities,
                raw,
            });
        }
        // The bytes the cache keeps: the file itself for a list; for a `.conf` the list
        // `ConfListFromConf` makes of it.
        let bytes = if is_list {
            bytes.to_vec()
        } else {
            let list = serde_json::json!({
                "name": name,
                "cniVersion": cni_version,
                "plugins": [Value::Object(obj)],
            });
            serde_json::to_vec(&list).map_err(|source| CniError::ConfigJson {
                path: path.to_path_buf(),
                source,
            })?
        };
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            plugins,
            bytes,
            source: Some(path.to_path_buf()),
        })
    }
}

/// libcni's `ValidateNetworkName` and `ValidateContainerID` rule:
/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub(crate) fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A plugin `type` is looked up as `<bin dir>/<type>`: it must not reach outside the dirs.
fn valid_plugin_type(t: &str) -> bool {
    !t.is_empty() && t != "." && t != ".." && !t.contains(['/', '\0'])
}

/// `"1.0.0"` → `(1, 0, 0)`; `None` if it is not three dot-separated numbers.
pub(crate) fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let out = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(out)
}

/// `v >= min` for spec versions (false if `v` does not parse).
pub(crate) fn version_at_least(v: &str, min: (u32, u32, u32)) -> bool {
    parse_version(v).is_some_and(|p| p >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[
        {"type":"bridge","bridge":"mkl0","ipam":{"type":"host-local"}},
        {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#;

    #[test]
    fn missing_or_empty_dir_is_no_network() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            NetworkConfigList::load(&d.path().join("nope")).unwrap(),
            None
        );
        write(d.path(), "README", "not a config");
        std::fs::create_dir(d.path().join("sub.conf")).unwrap();
        assert_eq!(NetworkConfigList::load(d.path()).unwrap(), None);
    }

    #[test]
    fn lexically_first_file_wins_whatever_its_extension() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "20-b.conflist", LIST);
        write(
            d.path(),
            "10-a.conf",
            r#"{"cniVersion":"0.4.0","name":"single","type":"ptp"}"#,
        );
        write(d.path(), "30-broken.json", "{");
        let net = NetworkConfigList::load(d.path()).unwrap().unwrap();
        assert_eq!(net.name, "single");
        assert_eq!(
            net.source.as_deref(),
            Some(d.path().join("10-a.conf").as_path())
        );
        // A `.conf` is a list of one, and the cache's `config` is that list.
        assert_eq!(net.plugins.len(), 1);
        assert_eq!(net.plugins[0].plugin_type, "ptp");
        assert_eq!(net.plugins[0].name.as_deref(), Some("single"));
        let list: Value = serde_json::from_slice(&net.bytes).unwrap();
        assert_eq!(list["plugins"][0]["type"], "ptp");
        assert_eq!(list["name"], "single");
        assert_eq!(list["cniVersion"], "0.4.0");
    }

    #[test]
    fn a_conflist_keeps_declared_capabilities_only() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "10.conflist", LIST);
        let net = NetworkConfigList::from_file(&p).unwrap();
        assert_eq!(net.cni_version, "1.0.0");
        assert_eq!(net.plugins[0].capabilities, Vec::<String>::new());
        assert_eq!(
            net.plugins[1].capabilities,
            vec!["portMappings".to_string()]
        );
        assert_eq!(net.bytes, LIST.as_bytes());
    }

    #[test]
    fn a_broken_first_file_is_an_error_naming_file_and_field() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            ("{", "CNI config"),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
                "\"name\" is missing",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"a b","plugins":[{"type":"x"}]}"#,
                "\"name\" \"a b\" has characters",
            ),
            (
                r#"{"name":"n","plugins":[{"type":"x"}]}"#,
                "\"cniVersion\" is missing",
            ),
            (
                r#"{"cniVersion":"one","name":"n","plugins":[{"type":"x"}]}"#,
                "\"cniVersion\" \"one\" is not a version",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
                "\"plugins\" is empty",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bin/sh"}]}"#,
                "\"plugins[0].type\" \"../bin/sh\" is not a plain file name",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"x"}]}"#,
                "\"plugins[0].type\" is missing",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":{"portMappings":"yes"}}]}"#,
                "plugins[0].capabilities.portMappings",
            ),
        ];
        for (text, want) in cases {
            let p = write(d.path(), "00.conflist", text);
            let err = NetworkConfigList::load(d.path()).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains(&p.display().to_string()), "{err}");
        }
        let p = write(d.path(), "00.conflist", "");
        std::fs::remove_file(p).unwrap();
        // A list in a `.conf`.
        write(d.path(), "00.conf", LIST);
        let err = NetworkConfigList::load(d.path()).unwrap_err().to_string();
        assert!(err.contains("*.conflist"), "{err}");
    }

    #[test]
    fn a_file_over_the_bound_is_refused_unread() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("00.conflist");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let err = NetworkConfigList::load(d.path()).unwrap_err();
        assert!(matches!(err, CniError::ConfigTooLarge { .. }), "{err}");
    }

    #[test]
    fn names_and_versions() {
        assert!(valid_name("cni-loopback"));
        assert!(valid_name("a.b_c-1"));
        assert!(!valid_name(""));
        assert!(!valid_name("-a"));
        assert!(!valid_name("a/b"));
        assert_eq!(parse_version("1.0.0"), Some((1, 0, 0)));
        assert_eq!(parse_version("0.3"), None);
        assert_eq!(parse_version("1.0.0.0"), None);
        assert!(version_at_least("0.4.0", (0, 4, 0)));
        assert!(!version_at_least("0.3.1", (0, 4, 0)));
        assert!(valid_plugin_type("host-local"));
        assert!(!valid_plugin_type(".."));
        assert!(!valid_plugin_type("a/b"));
    }

    #[test]
    fn loopback_is_go_cnis() {
        let lo = NetworkConfigList::loopback();
        let parsed = NetworkConfigList::parse(&lo.bytes, Path::new("lo"), true).unwrap();
        assert_eq!(parsed.plugins, lo.plugins);
        assert_eq!(parsed.name, lo.name);
    }
}
