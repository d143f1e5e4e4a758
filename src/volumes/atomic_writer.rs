//! The kubelet's atomic writer: the files of a downward API or projected volume appear all at
//! once, and a reader never sees half of an update.
//!
//! Mirrors `pkg/volume/util/atomic_writer.go`: the payload is written into a fresh hidden
//! directory named after the time (`..2026_12_07_23_27_40.1234567`), a `..data_tmp` symbolic
//! link to it is renamed over `..data` (one `rename`, atomic), and each file the user sees is
//! a link through `..data` (`name -> ..data/name`). The previous timestamped directory is
//! removed afterwards. A static pod's payload does not change while the pod lives (a changed
//! manifest is a new pod), so the swap happens once per set-up, and again after an agent
//! restart.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

/// The link to the current payload directory.
pub const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// One file of a payload: its contents and mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    /// The bytes.
    pub data: Vec<u8>,
    /// The permission bits.
    pub mode: u32,
}

/// Checks a payload path as `validatePath` does: relative, no `..` component, not starting
/// with `..` (the writer's own names), each component at most 255 bytes.
pub fn validate_path(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if p.is_absolute() {
        return Err(format!("{path:?}: must be a relative path"));
    }
    if path.starts_with("..") {
        return Err(format!("{path:?}: must not start with '..'"));
    }
    for c in p.components() {
        match c {
            Component::Normal(n) if n.len() > 255 => {
                return Err(format!("{path:?}: a component is longer than 255 bytes"));
            }
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(format!("{path:?}: must not contain '..'")),
        }
    }
    Ok(())
}

/// The name of a new payload directory: `..` and the UTC time to the nanosecond.
fn timestamped_name() -> String {
    let now = jiff::Timestamp::now();
    format!("..{}", now.strftime("%Y_%m_%d_%H_%M_%S.%f"))
}

/// Writes `payload` (relative path → file) into `dir` (which must exist) the atomic way.
pub fn write(dir: &Path, payload: &BTreeMap<String, FileProjection>) -> io::Result<()> {
    for path in payload.keys() {
        validate_path(path).map_err(io::Error::other)?;
    }
    let old = std::fs::read_link(dir.join(DATA_DIR)).ok();
    let ts = timestamped_name();
    let ts_dir = dir.join(&ts);
    std::fs::create_dir(&ts_dir)?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join(DATA_DIR_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_DIR))?;
    // The user-visible links, one per top-level name: `name -> ..data/name`.
    let mut tops: Vec<&str> = payload
        .keys()
        .filter_map(|p| p.split('/').find(|c| !c.is_empty() && *c != "."))
        .collect();
    tops.dedup();
    for top in tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &link)?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != ts.as_str()) {
        let old_dir = dir.join(old);
        if old_dir.starts_with(dir)
            && old_dir
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."))
        {
            let _ = std::fs::remove_dir_all(old_dir);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn the_kubelets_layout_and_a_second_write() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let mut p = BTreeMap::new();
        p.insert("name".to_string(), file("web-0", 0o644));
        p.insert("meta/labels".to_string(), file("app=\"web\"", 0o400));
        write(d, &p).unwrap();
        let data = std::fs::read_link(d.join(DATA_DIR)).unwrap();
        assert!(data.to_string_lossy().starts_with("..20"), "{data:?}");
        assert_eq!(
            std::fs::read_link(d.join("name")).unwrap(),
            Path::new("..data/name")
        );
        assert_eq!(
            std::fs::read_link(d.join("meta")).unwrap(),
            Path::new("..data/meta")
        );
        assert_eq!(
            std::fs::read_to_string(d.join("meta/labels")).unwrap(),
            "app=\"web\""
        );
        let mode = std::fs::metadata(d.join("meta/labels"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        // Again (an agent restart): a new directory, the old one gone.
        write(d, &p).unwrap();
        let again = std::fs::read_link(d.join(DATA_DIR)).unwrap();
        assert_ne!(again, data);
        assert!(!d.join(&data).exists());
        assert_eq!(std::fs::read_to_string(d.join("name")).unwrap(), "web-0");
    }

    #[test]
    fn paths_like_validate_path() {
        assert!(validate_path("a/b").is_ok());
        for bad in ["", "/etc/x", "../x", "a/../../b", "..data", "..x"] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
    }
}
