//! The container's seccomp filter: `linux.seccomp` of its spec compiled into BPF programs
//! before `fork`, installed by the child with `seccomp(2)` (runc's `libcontainer/seccomp`, which
//! uses libseccomp; here the maintained `seccompiler` crate of rust-vmm builds the programs and
//! the `syscalls` crate names this architecture's syscalls, docs/security-context.md).
//!
//! A profile is a default action and rules, each a set of syscall names, an action and
//! conditions on the arguments. seccompiler builds a program with one action on a match and one
//! otherwise, so a profile becomes one program per action, all installed: the kernel runs every
//! filter and takes the strictest answer (`KILL_PROCESS` > `KILL_THREAD` > `TRAP` > `ERRNO` >
//! `TRACE` > `LOG` > `ALLOW`). The *default* program lets every named syscall through and gives
//! the rest the default action; the program of action A gives A to the syscalls of A's rules
//! (when their conditions hold) and lets the rest through. A named syscall thus gets its rule's
//! action, any other the default, as with libseccomp. Rules with the default action are
//! skipped, as runc skips them; a name this architecture lacks is skipped too (runc: "ignoring
//! syscall"), and reported in [`Filter::skipped`].

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use std::collections::BTreeMap;
use std::str::FromStr;

use super::oci::{Seccomp, SeccompArg, SeccompSyscall};

/// A compiled profile: its programs (at least one) and the `seccomp(2)` flags.
#[derive(Clone, Debug)]
pub struct Filter {
    programs: Vec<BpfProgram>,
    flags: libc::c_ulong,
    /// Names in the profile that this architecture has no syscall for.
    pub skipped: Vec<String>,
}

impl Filter {
    /// The number of BPF programs installed.
    pub fn programs(&self) -> usize {
        self.programs.len()
    }
}

/// This architecture's number of syscall `name` (`mount`, not `SYS_mount`), if it has one.
pub fn syscall_number(name: &str) -> Option<i64> {
    syscalls::Sysno::from_str(name)
        .ok()
        .map(|s| i64::from(s.id()))
}

/// The action an OCI action name stands for (runc's `seccomp/config.go` names).
fn action(name: &str, ret: Option<u32>) -> Result<SeccompAction, String> {
    let eperm = libc::EPERM as u32;
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(ret.unwrap_or(eperm)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(ret.unwrap_or(eperm)),
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(
                "action SCMP_ACT_NOTIFY needs a seccomp agent listening on listenerPath, which minikubelet does not run; use SCMP_ACT_ERRNO or SCMP_ACT_LOG".into(),
            );
        }
        other => {
            return Err(format!(
                "unknown action {other:?}: use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_LOG, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP or SCMP_ACT_TRACE"
            ));
        }
    })
}

/// A `seccomp(2)` flag by its OCI name.
fn flag(name: &str) -> Result<libc::c_ulong, String> {
    match name {
        "SECCOMP_FILTER_FLAG_TSYNC" => Ok(libc::SECCOMP_FILTER_FLAG_TSYNC),
        "SECCOMP_FILTER_FLAG_LOG" => Ok(libc::SECCOMP_FILTER_FLAG_LOG),
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => Ok(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW),
        other => Err(format!(
            "unknown flag {other:?}: use SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG or SECCOMP_FILTER_FLAG_SPEC_ALLOW"
        )),
    }
}

fn condition(a: &SeccompArg) -> Result<SeccompCondition, String> {
    let (op, value) = match a.op.as_str() {
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, a.value),
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, a.value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, a.value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, a.value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, a.value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, a.value),
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(a.value), a.value_two),
        other => {
            return Err(format!(
                "unknown argument operator {other:?}: use SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, SCMP_CMP_GE or SCMP_CMP_MASKED_EQ"
            ));
        }
    };
    let index = u8::try_from(a.index)
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| format!("argument index {} is not 0 to 5", a.index))?;
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| format!("argument {index}: {e}"))
}

/// When a rule applies: always (`None`), or when one of the rules' conditions all hold. Like
/// runc, conditions on distinct arguments make one rule (all must hold); several on the same
/// argument make one rule each (any may hold), as libseccomp cannot AND them.
type When = Option<Vec<SeccompRule>>;

fn when(rule: &SeccompSyscall) -> Result<When, String> {
    if rule.args.is_empty() {
        return Ok(None);
    }
    let conds = rule
        .args
        .iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()?;
    let mut indexes: Vec<u32> = rule.args.iter().map(|a| a.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    let rule = |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(|e| e.to_string());
    if indexes.len() == conds.len() {
        Ok(Some(vec![rule(conds)?]))
    } else {
        Ok(Some(
            conds
                .into_iter()
                .map(|c| rule(vec![c]))
                .collect::<Result<_, _>>()?,
        ))
    }
}

fn merge(map: &mut BTreeMap<i64, When>, nr: i64, w: &When) {
    match (map.get_mut(&nr), w) {
        (None, _) => {
            map.insert(nr, w.clone());
        }
        (Some(slot @ Some(_)), None) => *slot = None,
        (Some(Some(rules)), Some(more)) => rules.extend(more.iter().cloned()),
        (Some(None), _) => {}
    }
}

/// The programs' size limit (`BPF_MAXINSNS`): the kernel refuses a longer one.
const MAX_INSTRUCTIONS: usize = 4096;

fn program(
    map: BTreeMap<i64, When>,
    on_mismatch: SeccompAction,
    on_match: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, String> {
    let rules = map
        .into_iter()
        .map(|(nr, w)| (nr, w.unwrap_or_default()))
        .collect();
    let filter = SeccompFilter::new(rules, on_mismatch, on_match, arch)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    let mut prog = BpfProgram::try_from(filter).map_err(|e| format!("seccomp program: {e}"))?;
    refuse_x32(&mut prog, arch);
    if prog.len() > MAX_INSTRUCTIONS {
        return Err(format!(
            "the profile makes a program of {} instructions, over the kernel's {MAX_INSTRUCTIONS}: name fewer syscalls or conditions",
            prog.len()
        ));
    }
    Ok(prog)
}

/// On x86_64, syscalls of the x32 ABI (numbers with bit 30 set) would miss every rule: they
/// kill the process, as a call of a foreign architecture does (seccompiler's architecture check,
/// libseccomp's default "bad arch" action). Inserted after that check, which is 3 instructions.
fn refuse_x32(prog: &mut BpfProgram, arch: TargetArch) {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    if !matches!(arch, TargetArch::x86_64) || prog.len() < 3 {
        return;
    }
    let ins = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let guard = [
        // A = seccomp_data.nr
        ins(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        // A >= X32_SYSCALL_BIT ? next : skip one
        ins(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            0,
            1,
            X32_SYSCALL_BIT,
        ),
        ins(
            libc::BPF_RET | libc::BPF_K,
            0,
            0,
            libc::SECCOMP_RET_KILL_PROCESS,
        ),
    ];
    prog.splice(3..3, guard);
}

/// Compiles `s` for this machine's architecture.
pub fn compile(s: &Seccomp) -> Result<Filter, String> {
    if s.listener_path.is_some() {
        return Err("listenerPath needs a seccomp agent, which minikubelet does not run".into());
    }
    let default = action(&s.default_action, s.default_errno_ret)?;
    let mut flags = 0;
    for f in &s.flags {
        flags |= flag(f)?;
    }
    let mut every = BTreeMap::new();
    let mut by_action: Vec<(SeccompAction, BTreeMap<i64, When>)> = Vec::new();
    let mut skipped = Vec::new();
    for rule in &s.syscalls {
        let a = action(&rule.action, rule.errno_ret)?;
        let w = when(rule).map_err(|e| format!("rule for {:?}: {e}", rule.names))?;
        if a == default {
            continue;
        }
        let group = match by_action.iter().position(|(x, _)| *x == a) {
            Some(i) => &mut by_action[i].1,
            None => {
                by_action.push((a, BTreeMap::new()));
                &mut by_action.last_mut().expect("just pushed").1
            }
        };
        for name in &rule.names {
            match syscall_number(name) {
                Some(nr) => {
                    merge(group, nr, &w);
                    merge(&mut every, nr, &w);
                }
                None => skipped.push(name.clone()),
            }
        }
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp: architecture {}: {e:?}", std::env::consts::ARCH))?;
    let mut programs = Vec::new();
    for (a, map) in by_action {
        if a != SeccompAction::Allow && !map.is_empty() {
            programs.push(program(map, SeccompAction::Allow, a, arch)?);
        }
    }
    // Installed last: a default that is not ALLOW usually refuses `seccomp(2)` itself, after
    // which no further program could be installed. (A profile that refuses `seccomp` by a
    // rule of its own and by its default fails to install, with that error.)
    if default != SeccompAction::Allow {
        programs.push(program(every, default.clone(), SeccompAction::Allow, arch)?);
    }
    if programs.is_empty() {
        // A profile that allows everything still puts the process in filter mode, as
        // libseccomp's filter would (`Seccomp: 2` in /proc/<pid>/status).
        programs.push(program(
            BTreeMap::new(),
            SeccompAction::Allow,
            SeccompAction::Log,
            arch,
        )?);
    }
    Ok(Filter {
        programs,
        flags,
        skipped,
    })
}

/// Installs `filter`'s programs on the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`); the
/// caller has `no_new_privs` set or `CAP_SYS_ADMIN`. Async-signal-safe: the programs were made
/// before fork.
///
/// # Safety
/// Only raw syscalls on memory prepared before the fork.
pub(crate) unsafe fn install(filter: &Filter) -> Result<(), i32> {
    for prog in &filter.programs {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: a valid sock_fprog pointing at the program, alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                filter.flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            // SAFETY: reading errno.
            return Err(unsafe { *libc::__errno_location() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> Seccomp {
        serde_json::from_value(json).unwrap()
    }

    fn deny(names: &[&str]) -> Seccomp {
        profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        }))
    }

    /// Runs `f` on a new thread with `filter` installed (a filter stays on its thread).
    fn under<T: Send + 'static>(filter: Filter, f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: prctl on integers; the programs live on this thread.
            unsafe {
                assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
                install(&filter).unwrap();
            }
            f()
        })
        .join()
        .unwrap()
    }

    fn errno_of(r: libc::c_long) -> i32 {
        // SAFETY: reading errno.
        if r < 0 {
            unsafe { *libc::__errno_location() }
        } else {
            0
        }
    }

    #[test]
    fn names_resolve_and_unknown_ones_are_skipped() {
        assert_eq!(syscall_number("mount"), Some(libc::SYS_mount));
        assert_eq!(syscall_number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(syscall_number("nope"), None);
        let f = compile(&deny(&["mount", "unshare", "nope"])).unwrap();
        assert_eq!(f.skipped, vec!["nope".to_string()]);
        assert_eq!(f.programs(), 1);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_fix() {
        let mut bad = deny(&["mount"]);
        bad.default_action = "SCMP_ACT_FOO".into();
        assert!(compile(&bad).unwrap_err().contains("use SCMP_ACT_ALLOW"));
        let notify = profile(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert!(compile(&notify).unwrap_err().contains("seccomp agent"));
        let op = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_APPROX"}]}]}));
        assert!(compile(&op).unwrap_err().contains("SCMP_CMP_MASKED_EQ"));
        let index = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
        assert!(compile(&index).unwrap_err().contains("0 to 5"));
        let flags = profile(serde_json::json!({"defaultAction": "SCMP_ACT_LOG", "flags": ["X"]}));
        assert!(compile(&flags).unwrap_err().contains("unknown flag"));
    }

    #[test]
    fn an_installed_filter_answers_with_its_errno() {
        let f = compile(&deny(&["unshare"])).unwrap();
        // SAFETY: unshare(0) changes nothing.
        let e = under(f, || errno_of(unsafe { libc::unshare(0) } as _));
        assert_eq!(e, libc::EPERM);
    }

    /// A default of ERRNO with an allowlist, a KILL rule, a conditional ERRNO with its own
    /// errno: each syscall gets its rule's action, the rest the default.
    #[test]
    fn mixed_actions_and_conditions_act_as_libseccomp() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                 "args": [{"index": 0, "value": 0xff00, "valueTwo": 0x1200, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["acct"], "action": "SCMP_ACT_LOG"},
            ],
        }));
        let f = compile(&p).unwrap();
        // One program per action: three errnos and LOG (an ALLOW default needs none).
        assert_eq!(f.programs(), 4);
        let got = under(f, || {
            // SAFETY: harmless syscalls with the arguments the rules look at.
            unsafe {
                [
                    errno_of(libc::unshare(0) as _),
                    errno_of(libc::syscall(libc::SYS_personality, 8)),
                    errno_of(libc::syscall(libc::SYS_personality, 0xffff_ffffu32)),
                    errno_of(libc::syscall(libc::SYS_getpgid, 0x12ab)),
                    errno_of(libc::syscall(libc::SYS_getpgid, 0)),
                ]
            }
        });
        assert_eq!(got, [38, 13, 0, 22, 0]);
    }

    #[test]
    fn a_deny_by_default_profile_allows_only_what_it_names() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "syscalls": [{"names": ["getpid", "gettid", "exit", "futex", "munmap", "madvise",
                                    "rt_sigprocmask", "sigaltstack", "exit_group", "sched_yield",
                                    "mmap", "rseq", "set_robust_list", "prctl"],
                          "action": "SCMP_ACT_ALLOW"},
                         {"names": ["getppid"], "action": "SCMP_ACT_KILL_THREAD",
                          "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]}],
        }));
        let f = compile(&p).unwrap();
        assert_eq!(f.programs(), 2);
        let got = under(f, || {
            // SAFETY: harmless syscalls.
            unsafe {
                [
                    errno_of(libc::syscall(libc::SYS_getpid)),
                    errno_of(libc::syscall(libc::SYS_getuid)),
                    errno_of(libc::syscall(libc::SYS_getppid, 0)),
                ]
            }
        });
        // getppid(0) does not meet the KILL rule's condition: it gets the default.
        assert_eq!(got, [0, libc::EPERM, libc::EPERM]);
    }

    #[test]
    fn an_allow_all_profile_still_filters() {
        let f = compile(&profile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}),
        ))
        .unwrap();
        assert_eq!(f.programs(), 1);
        let mode = under(f, || {
            std::fs::read_to_string("/proc/thread-self/status")
                .unwrap()
                .lines()
                .find(|l| l.starts_with("Seccomp:"))
                .map(|l| l.to_string())
        });
        assert_eq!(mode.as_deref(), Some("Seccomp:\t2"));
    }
}
