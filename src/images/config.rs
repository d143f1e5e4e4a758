//! The image config merged with the container spec, by the kubelet's and containerd's rules
//! (`kuberuntime_container.go` + containerd's CRI `WithProcessArgs`, `WithEnv`, `WithUser`):
//! `command` replaces ENTRYPOINT and drops CMD, `args` replaces CMD; the image's Env first, the
//! container's overriding by name; `workingDir`, else the image's WorkingDir, else `/`; the
//! user from `runAsUser`/`runAsGroup`, else the image's `User`, names looked up in the
//! rootfs's `/etc/passwd` and `/etc/group`. Pure: the caller gives the files' contents.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Container;

use super::oci::ProcessConfig;
use crate::runtime::env::expand;

/// What the container's process runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// The primary group, then the groups of the image's `/etc/group` that list the user as a
    /// member (containerd's `WithAdditionalGIDs`, the `Merge` supplemental-groups policy).
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error(
        "container {container}: no command: the pod sets none and the image has no ENTRYPOINT or CMD"
    )]
    NoCommand { container: String },
    #[error("container {container}: image user {user:?}: {why}")]
    User {
        container: String,
        user: String,
        why: String,
    },
}

/// The rootfs's `/etc/passwd` and `/etc/group` contents (empty if the image has none).
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    pub passwd: String,
    pub group: String,
}

impl Accounts {
    /// Read them from an image's merged root (`None` entries are empty).
    pub fn read(rootfs: &std::path::Path) -> Accounts {
        Accounts {
            passwd: std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default(),
            group: std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default(),
        }
    }

    /// (uid, gid) of a passwd entry by name or uid.
    fn user(&self, who: &str) -> Option<(u32, u32)> {
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && (f[0] == who || f[2] == who))
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    }

    /// The name of the first passwd entry with uid `uid`.
    fn user_name(&self, uid: u32) -> Option<String> {
        self.passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
        })
    }

    /// The gids of the groups that list `user` as a member, except the group named like the
    /// user (containerd's `getSupplementalGroupsFromPath` filter), in file order.
    fn member_of(&self, user: &str) -> Vec<u32> {
        self.group
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 4 && f[0] != user && f[3].split(',').any(|m| m == user))
                    .then(|| f[2].parse().ok())
                    .flatten()
            })
            .collect()
    }

    fn group(&self, name: &str) -> Option<u32> {
        self.group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name)
                .then(|| f[2].parse().ok())
                .flatten()
        })
    }
}

fn split_env(kv: &str) -> (String, String) {
    match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (kv.to_string(), String::new()),
    }
}

/// Merge. `container_env` is the container's resolved environment (`runtime::env`'s
/// `make_environment`, whose default `PATH` yields to the image's when the pod sets none).
pub fn merge(
    container: &Container,
    image: &ProcessConfig,
    container_env: &[(String, String)],
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    accounts: &Accounts,
) -> Result<Process, MergeError> {
    let pod_sets_path = container.env.iter().flatten().any(|e| e.name == "PATH");
    let mut env: Vec<(String, String)> =
        image.env.iter().flatten().map(|kv| split_env(kv)).collect();
    let image_has_path = env.iter().any(|(k, _)| k == "PATH");
    for (k, v) in container_env {
        if k == "PATH" && !pod_sets_path && image_has_path {
            continue;
        }
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    // `$(VAR)` in command and args expands from the container's own environment, as the
    // kubelet does (the image's Env is not visible to it).
    let map: HashMap<&str, &str> = container_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let lookup = |k: &str| map.get(k).map(|v| v.to_string());
    let ex = |v: &Vec<String>| v.iter().map(|s| expand(s, &lookup)).collect::<Vec<_>>();
    let command = container.command.as_ref().filter(|c| !c.is_empty());
    let args = container.args.as_ref().filter(|a| !a.is_empty());
    let argv: Vec<String> = match (command, args) {
        (Some(c), a) => ex(c)
            .into_iter()
            .chain(a.map(ex).unwrap_or_default())
            .collect(),
        (None, a) => image
            .entrypoint
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(match a {
                Some(a) => ex(a),
                None => image.cmd.clone().unwrap_or_default(),
            })
            .collect(),
    };
    if argv.is_empty() {
        return Err(MergeError::NoCommand {
            container: container.name.clone(),
        });
    }
    let cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    let (mut uid, mut gid) = (0u32, 0u32);
    let user = image.user.clone().unwrap_or_default();
    let bad = |why: &str| MergeError::User {
        container: container.name.clone(),
        user: user.clone(),
        why: why.to_string(),
    };
    if !user.is_empty() {
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        match u.parse::<u32>() {
            Ok(n) => {
                uid = n;
                gid = accounts.user(u).map_or(0, |(_, g)| g);
            }
            Err(_) => {
                let (a, b) = accounts
                    .user(u)
                    .ok_or_else(|| bad("no such user in the image's /etc/passwd"))?;
                uid = a;
                gid = b;
            }
        }
        if let Some(g) = g {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => accounts
                    .group(g)
                    .ok_or_else(|| bad("no such group in the image's /etc/group"))?,
            };
        }
    }
    if let Some(u) = run_as_user {
        uid = u as u32;
        if run_as_group.is_none() && user.split_once(':').is_none() {
            gid = accounts.user(&u.to_string()).map_or(gid, |(_, g)| g);
        }
    }
    if let Some(g) = run_as_group {
        gid = g as u32;
    }
    // `WithAdditionalGIDs(userstr)`: userstr is runAsUser, else the image's user (before ':'),
    // else "0"; a number is looked up in /etc/passwd for the name. Then `ensureAdditionalGids`
    // puts the primary group first (CVE-2023-25173).
    let userstr = match run_as_user {
        Some(u) => u.to_string(),
        None => user
            .split(':')
            .next()
            .filter(|u| !u.is_empty())
            .unwrap_or("0")
            .to_string(),
    };
    let name = match userstr.parse::<u32>() {
        Ok(n) => accounts.user_name(n),
        Err(_) => Some(userstr),
    };
    let mut additional_gids = vec![gid];
    for g in name.map(|n| accounts.member_of(&n)).unwrap_or_default() {
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    Ok(Process {
        argv,
        env,
        cwd,
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> ProcessConfig {
        ProcessConfig {
            user: Some("nginx".into()),
            env: Some(vec![
                "PATH=/img/bin".into(),
                "A=image".into(),
                "B=image".into(),
            ]),
            entrypoint: Some(vec!["/docker-entrypoint.sh".into()]),
            cmd: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
            working_dir: Some("/srv".into()),
        }
    }

    fn acc() -> Accounts {
        Accounts {
            passwd: "root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/:/bin/false\n".into(),
            group: "root:x:0:\nweb:x:2000:\nnginx:x:101:nginx\nlogs:x:50000:root,nginx\n".into(),
        }
    }

    #[test]
    fn additional_gids_like_containerd() {
        let env = vec![];
        let p = merge(&c(None, None), &img(), &env, None, None, &acc()).unwrap();
        // nginx: primary 101, member of logs (its own group `nginx` is not added twice).
        assert_eq!(p.additional_gids, [101, 50000]);
        let p = merge(&c(None, None), &img(), &env, Some(0), None, &acc()).unwrap();
        assert_eq!(p.additional_gids, [0, 50000]);
        // A uid without a passwd entry: the primary group only.
        let p = merge(&c(None, None), &img(), &env, Some(1000), Some(3000), &acc()).unwrap();
        assert_eq!(p.additional_gids, [3000]);
    }

    fn c(command: Option<&[&str]>, args: Option<&[&str]>) -> Container {
        Container {
            name: "c".into(),
            command: command.map(|v| v.iter().map(|s| s.to_string()).collect()),
            args: args.map(|v| v.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn argv_rules() {
        let env = vec![("X".to_string(), "ex".to_string())];
        let m = |c| merge(&c, &img(), &env, None, None, &acc()).unwrap().argv;
        assert_eq!(
            m(c(None, None)),
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        assert_eq!(
            m(c(None, Some(&["a", "$(X)"]))),
            ["/docker-entrypoint.sh", "a", "ex"]
        );
        assert_eq!(m(c(Some(&["/bin/sh"]), None)), ["/bin/sh"]);
        assert_eq!(
            m(c(Some(&["/bin/sh"]), Some(&["-c", "$(X)"]))),
            ["/bin/sh", "-c", "ex"]
        );
        let empty = ProcessConfig::default();
        assert!(matches!(
            merge(&c(None, None), &empty, &env, None, None, &acc()),
            Err(MergeError::NoCommand { .. })
        ));
    }

    #[test]
    fn env_cwd_user() {
        let env = vec![
            (
                "PATH".to_string(),
                crate::runtime::env::DEFAULT_PATH.to_string(),
            ),
            ("B".to_string(), "pod".to_string()),
            ("C".to_string(), "pod".to_string()),
        ];
        let p = merge(&c(None, None), &img(), &env, None, None, &acc()).unwrap();
        let e: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(e, ["PATH=/img/bin", "A=image", "B=pod", "C=pod"]);
        assert_eq!(p.cwd, "/srv");
        assert_eq!((p.uid, p.gid), (101, 101));
        let mut i = img();
        i.user = Some("1000:web".into());
        let p = merge(&c(None, None), &i, &env, None, None, &acc()).unwrap();
        assert_eq!((p.uid, p.gid), (1000, 2000));
        let p = merge(&c(None, None), &i, &env, Some(5), Some(6), &acc()).unwrap();
        assert_eq!((p.uid, p.gid), (5, 6));
        i.user = Some("nobody".into());
        assert!(merge(&c(None, None), &i, &env, None, None, &acc()).is_err());
        let mut wc = c(None, None);
        wc.working_dir = Some("/w".into());
        assert_eq!(
            merge(&wc, &img(), &env, None, None, &acc()).unwrap().cwd,
            "/w"
        );
        let p = merge(
            &wc,
            &ProcessConfig {
                cmd: Some(vec!["x".into()]),
                ..Default::default()
            },
            &env,
            None,
            None,
            &acc(),
        )
        .unwrap();
        assert_eq!(p.env[0].1, crate::runtime::env::DEFAULT_PATH);
    }
}
