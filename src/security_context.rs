//! The security context of a container: what the kubelet derives from the pod and hands to the
//! runtime, the run-as-non-root check, and the admission check that refuses what minikubelet
//! does not enforce.
//!
//! Mirrors `pkg/kubelet/kuberuntime/security_context.go` (`determineEffectiveSecurityContext`:
//! the container's fields over the pod's, `supplementalGroups` then `fsGroup` as extra groups,
//! `NoNewPrivs` from `allowPrivilegeEscalation: false`), `security_context_others.go`
//! (`verifyRunAsNonRoot`, with the kubelet's messages) and containerd's `getUserFromImage` (the
//! image's `User` as a uid or a name). The runtime writes the result into the OCI spec
//! (`crate::runtime::spec::apply_security`).
//!
//! Pod `sysctls` are the sysctl admit handler's (`crate::sysctl`). A field that is set but not
//! enforced is never run without: [`admit`] refuses the pod with
//! the field and the fix (reason `AppArmor` as the kubelet's AppArmor admit handler, for an
//! AppArmor profile on a node without AppArmor; otherwise `SecurityContextNotEnforced`,
//! minikubelet's own; docs/deviations.md). `supplementalGroupsPolicy`
//! is applied where the groups are made (`worker/container.rs`: `Merge`, the default, adds the
//! image's `/etc/group` memberships of the user; `Strict` does not).

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, Pod, PodSecurityContext, SeccompProfile as SeccompProfileSpec,
    SecurityContext,
};

use std::path::{Path, PathBuf};

use crate::api::format_pod;
use crate::runtime::spec::{
    AppArmorProfile as AppArmorChoice, LinuxContainerSecurityContext, SeccompProfile,
};

/// The admission reason of a pod asking for a security setting minikubelet does not enforce.
pub const SECURITY_CONTEXT_NOT_ENFORCED: &str = "SecurityContextNotEnforced";
/// The kubelet's AppArmor admit handler's reason.
pub const APP_ARMOR: &str = "AppArmor";

/// A container's security settings, container fields over the pod's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effective {
    /// `runAsUser`.
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot: true`.
    pub run_as_non_root: bool,
    /// The pod's `supplementalGroups`, then its `fsGroup`.
    pub supplemental_groups: Vec<i64>,
    /// What the runtime writes into the spec.
    pub linux: LinuxContainerSecurityContext,
}

fn pod_sc(pod: &Pod) -> Option<&PodSecurityContext> {
    pod.spec.as_ref().and_then(|s| s.security_context.as_ref())
}

/// The kubelet settings a container's security context depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Where `Localhost` seccomp profiles are: `<root-dir>/seccomp` (the kubelet's
    /// `seccompProfileRoot`).
    pub seccomp_profile_root: PathBuf,
    /// `seccompDefault`: `RuntimeDefault` where the pod names no profile.
    pub seccomp_default: bool,
}

impl Options {
    /// The options of a kubelet with `--root-dir=root_dir`.
    pub fn new(root_dir: &Path, seccomp_default: bool) -> Options {
        Options {
            seccomp_profile_root: root_dir.join("seccomp"),
            seccomp_default,
        }
    }
}

/// `getSeccompProfile` and `fieldSeccompProfile`: the container's profile, else the pod's, else
/// `RuntimeDefault` under `seccompDefault` and `Unconfined` without; a `Localhost` profile is
/// a path under the profile root (the API's validation keeps it relative and without `..`).
fn seccomp_profile(p: Option<&SeccompProfileSpec>, opts: &Options) -> SeccompProfile {
    match p {
        None if opts.seccomp_default => SeccompProfile::RuntimeDefault,
        None => SeccompProfile::Unconfined,
        Some(p) => match (p.type_.as_str(), p.localhost_profile.as_deref()) {
            ("RuntimeDefault", _) => SeccompProfile::RuntimeDefault,
            ("Localhost", Some(file)) => {
                SeccompProfile::Localhost(opts.seccomp_profile_root.join(file))
            }
            _ => SeccompProfile::Unconfined,
        },
    }
}

/// The kubelet's `GetProfile` for the `appArmorProfile` fields: the container's, else the
/// pod's. The deprecated annotations (`container.apparmor.security.beta.kubernetes.io/<name>`,
/// which the kubelet reads between the two) are not read: [`admit`] refuses a pod that sets one.
fn app_armor_profile(p: Option<&AppArmorProfile>) -> AppArmorChoice {
    match p {
        None => AppArmorChoice::Unset,
        Some(p) => match (p.type_.as_str(), p.localhost_profile.as_deref()) {
            ("RuntimeDefault", _) => AppArmorChoice::RuntimeDefault,
            ("Localhost", Some(name)) => AppArmorChoice::Localhost(name.to_string()),
            _ => AppArmorChoice::Unconfined,
        },
    }
}

/// `determineEffectiveSecurityContext` for `c` of `pod`.
pub fn determine_effective(pod: &Pod, c: &Container, opts: &Options) -> Effective {
    let psc = pod_sc(pod);
    let csc = c.security_context.as_ref();
    let pick = |cf: fn(&SecurityContext) -> Option<i64>,
                pf: fn(&PodSecurityContext) -> Option<i64>| {
        csc.and_then(cf).or_else(|| psc.and_then(pf))
    };
    let caps = csc.and_then(|s| s.capabilities.as_ref());
    let names = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();
    let mut supplemental_groups = psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default();
    supplemental_groups.extend(psc.and_then(|s| s.fs_group));
    Effective {
        run_as_user: pick(|s| s.run_as_user, |s| s.run_as_user),
        run_as_group: pick(|s| s.run_as_group, |s| s.run_as_group),
        run_as_non_root: csc
            .and_then(|s| s.run_as_non_root)
            .or_else(|| psc.and_then(|s| s.run_as_non_root))
            .unwrap_or(false),
        supplemental_groups,
        linux: LinuxContainerSecurityContext {
            add_capabilities: names(caps.and_then(|c| c.add.as_ref())),
            drop_capabilities: names(caps.and_then(|c| c.drop.as_ref())),
            privileged: csc.and_then(|s| s.privileged).unwrap_or(false),
            no_new_privs: csc.and_then(|s| s.allow_privilege_escalation) == Some(false),
            readonly_rootfs: csc
                .and_then(|s| s.read_only_root_filesystem)
                .unwrap_or(false),
            seccomp: seccomp_profile(
                csc.and_then(|s| s.seccomp_profile.as_ref())
                    .or_else(|| psc.and_then(|s| s.seccomp_profile.as_ref())),
                opts,
            ),
            apparmor: app_armor_profile(
                csc.and_then(|s| s.app_armor_profile.as_ref())
                    .or_else(|| psc.and_then(|s| s.app_armor_profile.as_ref())),
            ),
        },
    }
}

/// The user an image runs as, from its config's `User` (containerd's `getUserFromImage`: the
/// part before `:`; a number is a uid, anything else a name; none at all is root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageUser {
    /// A numeric user (0 when the image names none).
    Uid(i64),
    /// A user name, which the kubelet cannot check without the image's `/etc/passwd`.
    Name(String),
}

impl ImageUser {
    /// Parses an image config's `User`.
    pub fn parse(user: &str) -> ImageUser {
        let user = user.split(':').next().unwrap_or_default();
        if user.is_empty() {
            return ImageUser::Uid(0);
        }
        match user.parse::<i64>() {
            Ok(uid) => ImageUser::Uid(uid),
            Err(_) => ImageUser::Name(user.to_string()),
        }
    }
}

/// `verifyRunAsNonRoot`: with `runAsNonRoot: true`, a `runAsUser` of 0, or an image that runs
/// as root or as a user name, is refused (`CreateContainerConfigError`), in the kubelet's words.
pub fn verify_run_as_non_root(pod: &Pod, c: &Container, image: &ImageUser) -> Result<(), String> {
    let sc = determine_effective(pod, c, &Options::default());
    if !sc.run_as_non_root {
        return Ok(());
    }
    let name = &c.name;
    let p = format_pod(pod);
    match (sc.run_as_user, image) {
        (Some(0), _) => Err(format!(
            "container's runAsUser breaks non-root policy (pod: {p:?}, container: {name})"
        )),
        (Some(_), _) => Ok(()),
        (None, ImageUser::Uid(0)) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: {p:?}, container: {name})"
        )),
        (None, ImageUser::Name(user)) => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {p:?}, container: {name})"
        )),
        (None, ImageUser::Uid(_)) => Ok(()),
    }
}

/// A pod refused because it asks for a setting that would not be enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotEnforced {
    /// [`APP_ARMOR`] or [`SECURITY_CONTEXT_NOT_ENFORCED`].
    pub reason: &'static str,
    /// The field and the fix.
    pub message: String,
}

/// Whether the kernel has AppArmor on (the kubelet's `apparmor.IsEnabled`, runc's: securityfs
/// shows it and the module's `enabled` parameter is `Y`).
pub fn app_armor_enabled() -> bool {
    crate::shim::apparmor::enabled()
}

/// The prefix of the deprecated per-container AppArmor annotations (before Kubernetes 1.30's
/// `appArmorProfile` field); the value `unconfined` asks for nothing.
pub const APP_ARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// A seccomp or AppArmor profile type that asks for nothing.
fn unconfined(kind: &str) -> bool {
    kind == "Unconfined"
}

fn not_enforced(field: String, what: &str, fix: &str) -> NotEnforced {
    NotEnforced {
        reason: SECURITY_CONTEXT_NOT_ENFORCED,
        message: format!("{field}: minikubelet does not enforce {what} yet; {fix}"),
    }
}

/// The kubelet's AppArmor admit handler's refusal: its reason and `Cannot enforce AppArmor: `.
fn app_armor_refused(why: String) -> NotEnforced {
    NotEnforced {
        reason: APP_ARMOR,
        message: format!("Cannot enforce AppArmor: {why}"),
    }
}

/// The fields the pod's and a container's security context share, checked alike; `at` is the
/// path of the security context (`spec.securityContext`, `spec.containers[0].securityContext`).
fn check_shared(
    at: &str,
    app_armor: Option<&AppArmorProfile>,
    se_linux: bool,
    windows: bool,
    app_armor_on: bool,
) -> Result<(), NotEnforced> {
    let f = |name: &str| format!("{at}.{name}");
    if let Some(p) = app_armor.filter(|p| !unconfined(&p.type_)) {
        // The kubelet's AppArmor admit handler (`pkg/security/apparmor/validate.go`): a
        // profile on a node whose kernel has AppArmor off is refused in these words; where it
        // is on, a Localhost profile needs a name. Whether that profile is loaded is the
        // runtime's to find out: a missing one is the container's CreateContainerError.
        if !app_armor_on {
            return Err(app_armor_refused(
                "AppArmor is not enabled on the host".into(),
            ));
        }
        if p.type_ == "Localhost"
            && p.localhost_profile
                .as_deref()
                .is_none_or(|n| n.trim().is_empty())
        {
            return Err(app_armor_refused(format!(
                "invalid empty AppArmor profile name: {:?} ({})",
                p.localhost_profile.as_deref().unwrap_or_default(),
                f("appArmorProfile.localhostProfile")
            )));
        }
    }
    if se_linux {
        return Err(not_enforced(
            f("seLinuxOptions"),
            "SELinux labels",
            "remove the field",
        ));
    }
    if windows {
        return Err(not_enforced(
            f("windowsOptions"),
            "Windows options",
            "remove the field (a Linux node)",
        ));
    }
    Ok(())
}

/// Refuses `pod` if any of its security settings is one minikubelet does not enforce yet: the
/// first such field, with what to do instead. Everything else in the security context is
/// applied (user, groups, `fsGroup` as a group, `runAsNonRoot`, capabilities, privileged,
/// `allowPrivilegeEscalation`, `readOnlyRootFilesystem`, seccomp, AppArmor where the kernel
/// has it: `crate::runtime::spec::choose_apparmor`).
pub fn admit(pod: &Pod) -> Result<(), NotEnforced> {
    admit_on(
        pod,
        Lsm {
            app_armor: app_armor_enabled(),
            se_linux: se_linux_enabled(),
        },
    )
}

/// The security modules the node's kernel has on.
#[derive(Clone, Copy, Debug, Default)]
struct Lsm {
    app_armor: bool,
    se_linux: bool,
}

/// Whether the kernel has SELinux on (go-selinux's `GetEnabled`: selinuxfs is mounted).
pub fn se_linux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// [`admit`] on a node with the security modules of `lsm`.
fn admit_on(pod: &Pod, lsm: Lsm) -> Result<(), NotEnforced> {
    let app_armor_on = lsm.app_armor;
    // Without SELinux, containerd does not apply SELinux labels (go-selinux's `InitLabels`
    // returns none) and the kubelet does not relabel: the fields are accepted and have no
    // effect, as there. With SELinux on they would be applied: minikubelet refuses them.
    let se_linux_refused = lsm.se_linux;
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    // The deprecated annotations: the kubelet still reads them (a static pod's are not synced
    // into the fields); minikubelet does not, so a pod that sets one is refused rather than
    // run without the profile it names.
    let mut annotations = pod.metadata.annotations.iter().flatten();
    if let Some((key, _)) =
        annotations.find(|(k, v)| k.starts_with(APP_ARMOR_ANNOTATION_PREFIX) && *v != "unconfined")
    {
        if !app_armor_on {
            return Err(app_armor_refused(
                "AppArmor is not enabled on the host".into(),
            ));
        }
        return Err(NotEnforced {
            reason: SECURITY_CONTEXT_NOT_ENFORCED,
            message: format!(
                "metadata.annotations[{key}]: minikubelet does not read the deprecated AppArmor annotations; set securityContext.appArmorProfile instead (localhost/<name> is type Localhost with localhostProfile: <name>, runtime/default is type RuntimeDefault)"
            ),
        });
    }
    if let Some(sc) = spec.security_context.as_ref() {
        let at = "spec.securityContext";
        check_shared(
            at,
            sc.app_armor_profile.as_ref(),
            sc.se_linux_options.is_some() && se_linux_refused,
            sc.windows_options.is_some(),
            app_armor_on,
        )?;
        if sc.se_linux_change_policy.is_some() && se_linux_refused {
            return Err(not_enforced(
                format!("{at}.seLinuxChangePolicy"),
                "SELinux relabelling",
                "remove the field",
            ));
        }
    }
    for (path, c) in crate::api::pod::container_paths(spec) {
        let Some(sc) = c.security_context.as_ref() else {
            continue;
        };
        let at = format!("{path}.securityContext");
        check_shared(
            &at,
            sc.app_armor_profile.as_ref(),
            sc.se_linux_options.is_some() && se_linux_refused,
            sc.windows_options.is_some(),
            app_armor_on,
        )?;
        if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
            return Err(not_enforced(
                format!("{at}.procMount"),
                "procMount Unmasked (it needs a user namespace, hostUsers: false)",
                "remove the field or set it to Default",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn one(psc: serde_json::Value, csc: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"securityContext": psc, "containers": [{"name": "c", "image": "i", "securityContext": csc}]}
        }))
    }

    #[test]
    fn seccomp_profiles_as_the_kubelet_resolves_them() {
        let opts = Options::new(Path::new("/var/lib/kubelet"), false);
        let of = |psc, csc, opts: &Options| {
            let p = one(psc, csc);
            determine_effective(&p, &p.spec.as_ref().unwrap().containers[0], opts)
                .linux
                .seccomp
        };
        assert_eq!(of(json!({}), json!({}), &opts), SeccompProfile::Unconfined);
        let default_on = Options::new(Path::new("/var/lib/kubelet"), true);
        assert_eq!(
            of(json!({}), json!({}), &default_on),
            SeccompProfile::RuntimeDefault
        );
        // seccompDefault only fills in a missing profile.
        assert_eq!(
            of(
                json!({"seccompProfile": {"type": "Unconfined"}}),
                json!({}),
                &default_on
            ),
            SeccompProfile::Unconfined
        );
        assert_eq!(
            of(
                json!({"seccompProfile": {"type": "RuntimeDefault"}}),
                json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}),
                &opts
            ),
            SeccompProfile::Localhost("/var/lib/kubelet/seccomp/profiles/audit.json".into())
        );
    }

    /// Without SELinux on the node, its options are accepted and do nothing, as with
    /// containerd; with it on, minikubelet (which does not label) refuses them.
    #[test]
    fn se_linux_options_only_matter_where_se_linux_is_on() {
        let p = one(
            json!({"seLinuxOptions": {"level": "s0:c1"}, "seLinuxChangePolicy": "Recursive"}),
            json!({"seLinuxOptions": {"type": "spc_t"}}),
        );
        let lsm = |se_linux| Lsm {
            app_armor: false,
            se_linux,
        };
        assert_eq!(admit_on(&p, lsm(false)), Ok(()));
        let e = admit_on(&p, lsm(true)).unwrap_err();
        assert_eq!(e.reason, SECURITY_CONTEXT_NOT_ENFORCED);
        assert!(
            e.message.starts_with("spec.securityContext.seLinuxOptions"),
            "{}",
            e.message
        );
    }

    #[test]
    fn container_fields_win_and_fs_group_is_a_group() {
        let p = one(
            json!({"runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": true, "supplementalGroups": [5], "fsGroup": 7}),
            json!({"runAsUser": 10, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                   "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}),
        );
        let e = determine_effective(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            &Options::default(),
        );
        assert_eq!((e.run_as_user, e.run_as_group), (Some(10), Some(2)));
        assert!(e.run_as_non_root);
        assert_eq!(e.supplemental_groups, vec![5, 7]);
        assert_eq!(e.linux.add_capabilities, vec!["NET_ADMIN"]);
        assert_eq!(e.linux.drop_capabilities, vec!["ALL"]);
        assert!(e.linux.no_new_privs && e.linux.readonly_rootfs && !e.linux.privileged);
        assert_eq!(e.linux.seccomp, SeccompProfile::Unconfined);
        // The container's seccomp type wins over the pod's.
        let p = one(
            json!({"seccompProfile": {"type": "Unconfined"}}),
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        );
        let e = determine_effective(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            &Options::default(),
        );
        assert_eq!(e.linux.seccomp, SeccompProfile::RuntimeDefault);
        // allowPrivilegeEscalation unset or true: no no_new_privs.
        let p = one(json!({}), json!({"allowPrivilegeEscalation": true}));
        assert!(
            !determine_effective(
                &p,
                &p.spec.as_ref().unwrap().containers[0],
                &Options::default()
            )
            .linux
            .no_new_privs
        );
    }

    #[test]
    fn image_users_like_containerd() {
        assert_eq!(ImageUser::parse(""), ImageUser::Uid(0));
        assert_eq!(ImageUser::parse("1000"), ImageUser::Uid(1000));
        assert_eq!(ImageUser::parse("1000:1000"), ImageUser::Uid(1000));
        assert_eq!(
            ImageUser::parse("nginx:nginx"),
            ImageUser::Name("nginx".into())
        );
    }

    #[test]
    fn run_as_non_root_in_the_kubelets_words() {
        let check = |psc, csc, image: &str| {
            let p = one(psc, csc);
            verify_run_as_non_root(
                &p,
                &p.spec.as_ref().unwrap().containers[0],
                &ImageUser::parse(image),
            )
        };
        assert_eq!(check(json!({}), json!({}), ""), Ok(()));
        assert_eq!(
            check(json!({"runAsNonRoot": true}), json!({}), "").unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"p_default(u1)\", container: c)"
        );
        assert_eq!(
            check(json!({}), json!({"runAsNonRoot": true}), "nobody").unwrap_err(),
            "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"p_default(u1)\", container: c)"
        );
        assert_eq!(
            check(
                json!({"runAsNonRoot": true, "runAsUser": 0}),
                json!({}),
                "1000"
            )
            .unwrap_err(),
            "container's runAsUser breaks non-root policy (pod: \"p_default(u1)\", container: c)"
        );
        assert_eq!(
            check(json!({"runAsNonRoot": true}), json!({}), "1000:1000"),
            Ok(())
        );
        assert_eq!(
            check(
                json!({"runAsNonRoot": true}),
                json!({"runAsUser": 65534}),
                ""
            ),
            Ok(())
        );
        // The container's false overrides the pod's true.
        assert_eq!(
            check(
                json!({"runAsNonRoot": true}),
                json!({"runAsNonRoot": false}),
                ""
            ),
            Ok(())
        );
    }

    #[test]
    fn settings_that_are_not_enforced_refuse_the_pod() {
        // On a node without AppArmor (this table's AppArmor rows; the next test has the rest).
        let refused = |psc, csc| {
            admit_on(
                &one(psc, csc),
                Lsm {
                    app_armor: false,
                    se_linux: true,
                },
            )
            .err()
        };
        assert_eq!(
            refused(
                json!({"fsGroup": 5, "runAsNonRoot": true}),
                json!({"privileged": true})
            ),
            None
        );
        assert_eq!(
            refused(json!({"seccompProfile": {"type": "Unconfined"}}), json!({})),
            None
        );
        assert_eq!(refused(json!({}), json!({"procMount": "Default"})), None);
        assert_eq!(
            refused(json!({"supplementalGroupsPolicy": "Strict"}), json!({})),
            None
        );
        assert_eq!(
            refused(
                json!({"seccompProfile": {"type": "RuntimeDefault"}}),
                json!({})
            ),
            None
        );
        assert_eq!(
            refused(
                json!({}),
                json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}),
            ),
            None
        );
        let e = refused(
            json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
            json!({}),
        )
        .unwrap();
        assert_eq!(e.reason, APP_ARMOR);
        assert_eq!(
            e.message,
            "Cannot enforce AppArmor: AppArmor is not enabled on the host"
        );
        for (psc, csc, field) in [
            (
                json!({"seLinuxOptions": {"level": "s0"}}),
                json!({}),
                "spec.securityContext.seLinuxOptions",
            ),
            (
                json!({}),
                json!({"procMount": "Unmasked"}),
                "spec.containers[0].securityContext.procMount",
            ),
        ] {
            let e = refused(psc, csc).unwrap();
            assert!(e.message.starts_with(field), "{field}: {}", e.message);
        }
    }

    #[test]
    fn app_armor_profiles_as_the_kubelet_admits_and_resolves_them() {
        let of = |psc, csc| {
            let p = one(psc, csc);
            determine_effective(
                &p,
                &p.spec.as_ref().unwrap().containers[0],
                &Options::default(),
            )
            .linux
            .apparmor
        };
        assert_eq!(of(json!({}), json!({})), AppArmorChoice::Unset);
        assert_eq!(
            of(
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
                json!({})
            ),
            AppArmorChoice::RuntimeDefault
        );
        // The container's wins over the pod's.
        assert_eq!(
            of(
                json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
                json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "mkl-test"}})
            ),
            AppArmorChoice::Localhost("mkl-test".into())
        );
        assert_eq!(
            of(
                json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "mkl-test"}}),
                json!({"appArmorProfile": {"type": "Unconfined"}})
            ),
            AppArmorChoice::Unconfined
        );

        // Where the kernel has AppArmor every type is admitted (the runtime looks for the
        // profile); a Localhost profile needs a name.
        let on = |psc, csc| {
            admit_on(
                &one(psc, csc),
                Lsm {
                    app_armor: true,
                    se_linux: false,
                },
            )
            .err()
        };
        for t in ["RuntimeDefault", "Unconfined"] {
            assert_eq!(on(json!({"appArmorProfile": {"type": t}}), json!({})), None);
        }
        assert_eq!(
            on(
                json!({}),
                json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "not-loaded"}})
            ),
            None
        );
        let e = on(
            json!({}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": " "}}),
        )
        .unwrap();
        assert_eq!(e.reason, APP_ARMOR);
        assert_eq!(
            e.message,
            "Cannot enforce AppArmor: invalid empty AppArmor profile name: \" \" (spec.containers[0].securityContext.appArmorProfile.localhostProfile)"
        );

        // The deprecated annotations are not read: refused, with the field to use instead,
        // or in the kubelet's words where the node has no AppArmor; `unconfined` asks nothing.
        let annotated = |value: &str| {
            let mut p = one(json!({}), json!({}));
            p.metadata.annotations = Some(
                [(format!("{APP_ARMOR_ANNOTATION_PREFIX}c"), value.to_string())]
                    .into_iter()
                    .collect(),
            );
            p
        };
        let e = admit_on(
            &annotated("localhost/mkl-test"),
            Lsm {
                app_armor: true,
                se_linux: false,
            },
        )
        .unwrap_err();
        assert_eq!(e.reason, SECURITY_CONTEXT_NOT_ENFORCED);
        assert!(
            e.message.starts_with("metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]: minikubelet does not read the deprecated AppArmor annotations; set securityContext.appArmorProfile"),
            "{}",
            e.message
        );
        let e = admit_on(
            &annotated("runtime/default"),
            Lsm {
                app_armor: false,
                se_linux: false,
            },
        )
        .unwrap_err();
        assert_eq!(
            (e.reason, e.message.as_str()),
            (
                APP_ARMOR,
                "Cannot enforce AppArmor: AppArmor is not enabled on the host"
            )
        );
        assert_eq!(
            admit_on(
                &annotated("unconfined"),
                Lsm {
                    app_armor: false,
                    se_linux: false
                }
            ),
            Ok(())
        );
        assert_eq!(
            admit_on(
                &annotated("unconfined"),
                Lsm {
                    app_armor: true,
                    se_linux: false
                }
            ),
            Ok(())
        );
    }
}
