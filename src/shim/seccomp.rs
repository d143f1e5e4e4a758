//! The container's seccomp filter: `linux.seccomp` of its spec compiled into a BPF program
//! before `fork`, installed by the child with one `seccomp(2)` call (runc's
//! `libcontainer/seccomp`, which uses libseccomp; here the maintained `seccompiler` crate of
//! rust-vmm builds the program, docs/security-context.md).
//!
//! The subset compiled: a default action and rules that name syscalls, all with one action
//! (`SCMP_ACT_ALLOW` / `SCMP_ACT_ERRNO` with its errno), no argument conditions. A name this
//! table does not know is skipped, as runc skips a syscall its architecture lacks.

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

use super::oci::Seccomp;

macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name as i64)),*]
    };
}

/// Syscall names this compiler knows, with this architecture's numbers (`libc::SYS_*`).
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(&str, i64)] = syscalls![
    SYS_acct,
    SYS_add_key,
    SYS_bpf,
    SYS_clock_adjtime,
    SYS_clock_settime,
    SYS_delete_module,
    SYS_finit_module,
    SYS_get_mempolicy,
    SYS_init_module,
    SYS_ioperm,
    SYS_iopl,
    SYS_kcmp,
    SYS_kexec_file_load,
    SYS_kexec_load,
    SYS_keyctl,
    SYS_lookup_dcookie,
    SYS_mbind,
    SYS_mount,
    SYS_move_pages,
    SYS_name_to_handle_at,
    SYS_nfsservctl,
    SYS_open_by_handle_at,
    SYS_perf_event_open,
    SYS_pivot_root,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_ptrace,
    SYS_quotactl,
    SYS_reboot,
    SYS_request_key,
    SYS_set_mempolicy,
    SYS_setns,
    SYS_settimeofday,
    SYS_swapon,
    SYS_swapoff,
    SYS_sysfs,
    SYS__sysctl,
    SYS_umount2,
    SYS_unshare,
    SYS_uselib,
    SYS_userfaultfd,
    SYS_ustat,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_move_mount,
    SYS_open_tree,
    SYS_mount_setattr,
];

/// Syscall names this compiler knows, with this architecture's numbers (`libc::SYS_*`).
#[cfg(target_arch = "aarch64")]
const SYSCALLS: &[(&str, i64)] = syscalls![
    SYS_acct,
    SYS_add_key,
    SYS_bpf,
    SYS_clock_adjtime,
    SYS_clock_settime,
    SYS_delete_module,
    SYS_finit_module,
    SYS_get_mempolicy,
    SYS_init_module,
    SYS_kcmp,
    SYS_kexec_file_load,
    SYS_kexec_load,
    SYS_keyctl,
    SYS_lookup_dcookie,
    SYS_mbind,
    SYS_mount,
    SYS_move_pages,
    SYS_name_to_handle_at,
    SYS_nfsservctl,
    SYS_open_by_handle_at,
    SYS_perf_event_open,
    SYS_pivot_root,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_ptrace,
    SYS_quotactl,
    SYS_reboot,
    SYS_request_key,
    SYS_set_mempolicy,
    SYS_setns,
    SYS_settimeofday,
    SYS_swapon,
    SYS_swapoff,
    SYS_umount2,
    SYS_unshare,
    SYS_userfaultfd,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_move_mount,
    SYS_open_tree,
    SYS_mount_setattr,
];

/// This architecture's number of syscall `name` (`mount`, not `SYS_mount`), if known.
pub fn syscall_number(name: &str) -> Option<i64> {
    SYSCALLS
        .iter()
        .find(|(n, _)| n.strip_prefix("SYS_") == Some(name))
        .map(|(_, nr)| *nr)
}

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, String> {
    match name {
        "SCMP_ACT_ALLOW" => Ok(SeccompAction::Allow),
        "SCMP_ACT_ERRNO" => Ok(SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))),
        other => Err(format!("seccomp action {other:?} is not supported")),
    }
}

/// Compiles `s` for this machine's architecture.
pub fn compile(s: &Seccomp) -> Result<BpfProgram, String> {
    let default = action(&s.default_action, s.default_errno_ret)?;
    let mut on_match: Option<SeccompAction> = None;
    let mut rules = BTreeMap::new();
    for rule in &s.syscalls {
        let a = action(&rule.action, rule.errno_ret)?;
        match &on_match {
            None => on_match = Some(a.clone()),
            Some(m) if *m == a => {}
            Some(_) => return Err("seccomp rules with different actions are not supported".into()),
        }
        for name in &rule.names {
            if let Some(nr) = syscall_number(name) {
                rules.insert(nr, Vec::new());
            }
        }
    }
    let Some(on_match) = on_match else {
        return Err("a seccomp filter without rules".into());
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: architecture {}: {e:?}", std::env::consts::ARCH))?;
    let filter = SeccompFilter::new(rules, default, on_match, arch)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    BpfProgram::try_from(filter).map_err(|e| format!("seccomp program: {e}"))
}

/// Installs `prog` on the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`); the caller has
/// `no_new_privs` set or `CAP_SYS_ADMIN`. Async-signal-safe: the program was made before fork.
///
/// # Safety
/// Only raw syscalls on memory prepared before the fork.
pub(crate) unsafe fn install(prog: &BpfProgram) -> Result<(), i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid sock_fprog pointing at the program, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        // SAFETY: reading errno.
        return Err(unsafe { *libc::__errno_location() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::oci::SeccompSyscall;

    fn deny(names: &[&str]) -> Seccomp {
        Seccomp {
            default_action: "SCMP_ACT_ALLOW".into(),
            default_errno_ret: None,
            architectures: vec![],
            syscalls: vec![SeccompSyscall {
                names: names.iter().map(|n| n.to_string()).collect(),
                action: "SCMP_ACT_ERRNO".into(),
                errno_ret: Some(1),
            }],
        }
    }

    #[test]
    fn compiles_and_names_resolve() {
        assert_eq!(syscall_number("mount"), Some(libc::SYS_mount));
        assert_eq!(syscall_number("nope"), None);
        let p = compile(&deny(&["mount", "unshare", "nope"])).unwrap();
        assert!(p.len() > 4);
        let mut mixed = deny(&["mount"]);
        mixed.syscalls.push(SeccompSyscall {
            names: vec!["ptrace".into()],
            action: "SCMP_ACT_ALLOW".into(),
            errno_ret: None,
        });
        assert!(compile(&mixed).is_err());
        let mut bad = deny(&["mount"]);
        bad.default_action = "SCMP_ACT_TRAP".into();
        assert!(compile(&bad).is_err());
    }

    #[test]
    fn an_installed_filter_answers_eperm() {
        let prog = compile(&deny(&["unshare"])).unwrap();
        // In a child thread: the filter stays on that thread only.
        std::thread::spawn(move || {
            // SAFETY: prctl on integers; the program lives on this thread.
            unsafe {
                assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
                install(&prog).unwrap();
                assert_eq!(libc::unshare(0), -1);
                assert_eq!(*libc::__errno_location(), libc::EPERM);
            }
        })
        .join()
        .unwrap();
    }
}
