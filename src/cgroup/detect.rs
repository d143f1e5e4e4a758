//! Finding the hierarchies: what statfs says `/sys/fs/cgroup` is, then `<proc>/self/mountinfo`
//! for mount points and `<proc>/self/cgroup` for this process's own cgroup in each.

use std::path::{Component, Path, PathBuf};

use procfs::process::{MountInfo, MountInfos};
use procfs::{FromRead, ProcessCGroup, ProcessCGroups};

use super::{Controller, Error, Hierarchy, Layout};

/// What statfs reports for `<sys>/fs/cgroup`: the layout hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootFs {
    /// `CGROUP2_SUPER_MAGIC`: a pure v2 host.
    Cgroup2,
    /// Anything else (a tmpfs holding v1 mounts): v1 or hybrid, decided from mountinfo.
    Other,
}

/// statfs magic of the cgroup mount directory.
pub(super) fn root_fs_kind(cgroup_dir: &Path) -> Result<RootFs, Error> {
    let st = nix::sys::statfs::statfs(cgroup_dir).map_err(|source| Error::Statfs {
        path: cgroup_dir.to_path_buf(),
        source,
    })?;
    Ok(
        if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
            RootFs::Cgroup2
        } else {
            RootFs::Other
        },
    )
}

/// The result of detection, before any `--cgroup-root` is applied (root = mount point).
pub(super) struct Detected {
    pub layout: Layout,
    pub hierarchies: Vec<Hierarchy>,
    pub unified: Option<PathBuf>,
}

pub(super) fn detect(
    proc_root: &Path,
    cgroup_dir: &Path,
    root_fs: RootFs,
) -> Result<Detected, Error> {
    let mountinfo_path = proc_root.join("self/mountinfo");
    let cgroup_path = proc_root.join("self/cgroup");
    let mounts = MountInfos::from_file(&mountinfo_path)
        .map_err(|e| proc_error(&mountinfo_path, e))?
        .0;
    let cgroups = ProcessCGroups::from_file(&cgroup_path)
        .map_err(|e| proc_error(&cgroup_path, e))?
        .0;
    let ctx = Ctx {
        mountinfo: &mountinfo_path,
        cgroup_file: &cgroup_path,
        cgroup_dir,
    };
    match root_fs {
        RootFs::Cgroup2 => ctx.v2(&mounts, &cgroups),
        RootFs::Other => ctx.v1(&mounts, &cgroups),
    }
}

fn proc_error(path: &Path, e: procfs::ProcError) -> Error {
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    match e {
        procfs::ProcError::Io(source, _) => read(source),
        procfs::ProcError::NotFound(_) => read(std::io::ErrorKind::NotFound.into()),
        procfs::ProcError::PermissionDenied(_) => read(std::io::ErrorKind::PermissionDenied.into()),
        other => Error::Parse {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

struct Ctx<'a> {
    mountinfo: &'a Path,
    cgroup_file: &'a Path,
    cgroup_dir: &'a Path,
}

impl Ctx<'_> {
    fn no_hierarchy(&self, reason: String) -> Error {
        Error::NoHierarchy {
            mountinfo: self.mountinfo.to_path_buf(),
            reason,
        }
    }

    /// Among matching mounts prefer `exact`, then anything under `<sys>/fs/cgroup`, then the first
    /// (a container may see the same hierarchy bind-mounted twice).
    fn pick<'m>(
        &self,
        mut matching: Vec<&'m MountInfo>,
        exact: Option<&Path>,
    ) -> Option<&'m MountInfo> {
        if let Some(i) = exact.and_then(|e| matching.iter().position(|m| m.mount_point == e)) {
            return Some(matching.swap_remove(i));
        }
        if let Some(i) = matching
            .iter()
            .position(|m| m.mount_point.starts_with(self.cgroup_dir))
        {
            return Some(matching.swap_remove(i));
        }
        matching.into_iter().next()
    }

    fn unified_mount<'m>(&self, mounts: &'m [MountInfo], exact: &Path) -> Option<&'m MountInfo> {
        let v2: Vec<&MountInfo> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
        self.pick(v2, Some(exact))
    }

    fn v2(&self, mounts: &[MountInfo], cgroups: &[ProcessCGroup]) -> Result<Detected, Error> {
        let mount = self.unified_mount(mounts, self.cgroup_dir).ok_or_else(|| {
            self.no_hierarchy("no cgroup2 mount although the cgroup fs is cgroup2".into())
        })?;
        let line = cgroups
            .iter()
            .find(|c| c.hierarchy == 0 && c.controllers.is_empty())
            .ok_or_else(|| {
                self.no_hierarchy(format!("no \"0::\" line in {}", self.cgroup_file.display()))
            })?;
        let own = self.resolve_own(mount, &line.pathname)?;
        Ok(Detected {
            layout: Layout::V2,
            hierarchies: vec![Hierarchy {
                controllers: Controller::ALL.to_vec(),
                mount_point: mount.mount_point.clone(),
                mount_root: mount.root.clone(),
                root: mount.mount_point.clone(),
                own,
            }],
            unified: None,
        })
    }

    fn v1(&self, mounts: &[MountInfo], cgroups: &[ProcessCGroup]) -> Result<Detected, Error> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for controller in Controller::ALL {
            let name = controller.name();
            let matching = mounts
                .iter()
                .filter(|m| m.fs_type == "cgroup" && m.super_options.contains_key(name))
                .collect();
            let Some(mount) = self.pick(matching, None) else {
                tracing::debug!(controller = name, "cgroup v1 controller not mounted");
                continue;
            };
            if let Some(h) = hierarchies
                .iter_mut()
                .find(|h| h.mount_point == mount.mount_point)
            {
                h.controllers.push(controller);
                continue;
            }
            let line = cgroups
                .iter()
                .find(|c| c.controllers.iter().any(|c| c == name))
                .ok_or_else(|| {
                    self.no_hierarchy(format!(
                        "controller {name} is mounted at {} but has no line in {}",
                        mount.mount_point.display(),
                        self.cgroup_file.display()
                    ))
                })?;
            let own = self.resolve_own(mount, &line.pathname)?;
            hierarchies.push(Hierarchy {
                controllers: vec![controller],
                mount_point: mount.mount_point.clone(),
                mount_root: mount.root.clone(),
                root: mount.mount_point.clone(),
                own,
            });
        }
        if hierarchies.is_empty() {
            return Err(self.no_hierarchy(
                "no cgroup v1 mount of cpu, cpuacct, memory, pids or freezer".into(),
            ));
        }
        let unified = self
            .unified_mount(mounts, &self.cgroup_dir.join("unified"))
            .map(|m| m.mount_point.clone());
        Ok(Detected {
            layout: if unified.is_some() {
                Layout::Hybrid
            } else {
                Layout::V1
            },
            hierarchies,
            unified,
        })
    }

    /// The directory of our own cgroup: `own` (from /proc/self/cgroup, relative to the hierarchy)
    /// minus the mount's root, under the mount point.
    fn resolve_own(&self, mount: &MountInfo, own: &str) -> Result<PathBuf, Error> {
        let outside = || Error::OwnOutsideMount {
            mount_point: mount.mount_point.clone(),
            mount_root: mount.root.clone(),
            own: own.to_string(),
            cgroup_file: self.cgroup_file.to_path_buf(),
        };
        let rel = Path::new(own)
            .strip_prefix(&mount.root)
            .map_err(|_| outside())?;
        let mut dir = mount.mount_point.clone();
        for c in rel.components() {
            match c {
                Component::Normal(n) => dir.push(n),
                Component::CurDir => {}
                _ => return Err(outside()),
            }
        }
        Ok(dir)
    }
}
