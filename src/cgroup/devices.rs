//! The device controller: which device nodes a container's processes may create, read and write.
//!
//! Mirrors runc's `libcontainer/cgroups/devices` (v1: `devices.deny`/`devices.allow`; v2: an eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup, runc's
//! `devicefilter.go`) and its `specconv.AllowedDevices`: every container may `mknod` any node
//! but only open the standard ones (`/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`,
//! `console`, `ptmx`, `pts/*`, `net/tun`); a privileged one may use every device (containerd's
//! `WithAllDevicesAllowed`). Without this, the 14 default capabilities (`CAP_MKNOD` among them)
//! let any container make `/dev/sda` and read the node's disk.
//!
//! The eBPF program is assembled here by hand, about 20 instructions per rule (no crate builds
//! programs this small without a compiler toolchain or a large dependency: `aya` and `libbpf-rs`
//! load compiled objects; docs/isolation.md says why).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::Error;

/// What a rule lets a process do with a node (`m`, `r`, `w` of `devices.allow`).
pub const MKNOD: u8 = 1;
/// Open for reading.
pub const READ: u8 = 2;
/// Open for writing.
pub const WRITE: u8 = 4;
/// `rwm`.
pub const ALL_ACCESS: u8 = MKNOD | READ | WRITE;

/// The kind of node a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `a`: both.
    All,
    /// `c`: character devices.
    Char,
    /// `b`: block devices.
    Block,
}

/// One allow rule: `kind major:minor access`, `None` standing for `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Character, block or both.
    pub kind: Kind,
    /// The major number, or any.
    pub major: Option<u32>,
    /// The minor number, or any.
    pub minor: Option<u32>,
    /// [`MKNOD`] | [`READ`] | [`WRITE`].
    pub access: u8,
}

impl Rule {
    const fn char(major: u32, minor: Option<u32>) -> Rule {
        Rule {
            kind: Kind::Char,
            major: Some(major),
            minor,
            access: ALL_ACCESS,
        }
    }

    /// The rule as `devices.allow` takes it (`c 1:3 rwm`, `b *:* m`, `a`).
    pub fn v1(&self) -> String {
        let kind = match self.kind {
            Kind::All => return "a".into(),
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }
}

/// Every device, every access (a privileged container).
pub const ALLOW_ALL: Rule = Rule {
    kind: Kind::All,
    major: None,
    minor: None,
    access: ALL_ACCESS,
};

/// runc's `AllowedDevices`: what every container may use.
pub const DEFAULT_ALLOWED: [Rule; 12] = [
    Rule {
        kind: Kind::Char,
        major: None,
        minor: None,
        access: MKNOD,
    },
    Rule {
        kind: Kind::Block,
        major: None,
        minor: None,
        access: MKNOD,
    },
    Rule::char(1, Some(3)),    // /dev/null
    Rule::char(1, Some(8)),    // /dev/random
    Rule::char(1, Some(7)),    // /dev/full
    Rule::char(5, Some(0)),    // /dev/tty
    Rule::char(1, Some(5)),    // /dev/zero
    Rule::char(1, Some(9)),    // /dev/urandom
    Rule::char(5, Some(1)),    // /dev/console
    Rule::char(136, None),     // /dev/pts/*
    Rule::char(5, Some(2)),    // /dev/ptmx
    Rule::char(10, Some(200)), // /dev/net/tun
];

/// The rules of a container: everything when `privileged`, else [`DEFAULT_ALLOWED`].
pub fn container_rules(privileged: bool) -> Vec<Rule> {
    if privileged {
        vec![ALLOW_ALL]
    } else {
        DEFAULT_ALLOWED.to_vec()
    }
}

/// v1: deny everything, then allow each rule (runc's `fs/devices.go`; a child of a cgroup
/// starts with its parent's list).
pub(super) fn write_v1(dir: &Path, rules: &[Rule]) -> Result<(), Error> {
    if rules.contains(&ALLOW_ALL) {
        return super::io::write_value(&dir.join("devices.allow"), "a");
    }
    super::io::write_value(&dir.join("devices.deny"), "a")?;
    for r in rules {
        super::io::write_value(&dir.join("devices.allow"), &r.v1())?;
    }
    Ok(())
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// `struct bpf_cgroup_dev_ctx`: access_type (type | access << 16), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// The program for `rules` (an allowlist; anything else is refused): r2 = type, r3 = access,
/// r4 = major, r5 = minor; per rule, each condition that does not hold jumps to the next rule,
/// and a rule whose conditions all hold returns 1 (allowed). At the end, 0.
fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules {
        let mut block = Vec::new();
        match r.kind {
            Kind::All => {}
            Kind::Char => block.push(insn(JNE_K, 2, 0, 0, DEV_CHAR)),
            Kind::Block => block.push(insn(JNE_K, 2, 0, 0, DEV_BLOCK)),
        }
        if r.access & ALL_ACCESS != ALL_ACCESS {
            // Every access asked for must be one the rule allows: (access & !allowed) == 0.
            block.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            block.push(insn(
                ALU32_AND_K,
                1,
                0,
                0,
                i32::from(!r.access & ALL_ACCESS),
            ));
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        if let Some(major) = r.major {
            block.push(insn(JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = r.minor {
            block.push(insn(JNE_K, 5, 0, 0, minor as i32));
        }
        let unconditional = block.is_empty();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
        block.push(insn(EXIT, 0, 0, 0, 0));
        if unconditional {
            // Allows everything: what follows could never run, and the verifier refuses
            // unreachable instructions.
            p.extend(block);
            return p;
        }
        // A failed condition skips the rest of the block.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// v2: loads the program for `rules` and attaches it to the cgroup `dir` (with
/// `BPF_F_ALLOW_MULTI`, so that programs above it, such as systemd's, still apply: a device
/// is usable only when every program allows it). The attachment keeps the program alive; it
/// goes with the cgroup.
pub fn attach_v2(dir: &Path, rules: &[Rule]) -> Result<(), Error> {
    let fail = |what: &str, e: std::io::Error| Error::Write {
        path: dir.to_path_buf(),
        value: format!("{what} (device filter of {} rules)", rules.len()),
        source: e,
    };
    let code: Vec<u8> = program(rules).iter().flat_map(|i| i.bytes()).collect();
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"mkl_devices\0");
    // Without the verifier's log first (a log that outgrows its buffer fails the load with
    // ENOSPC); if the kernel refuses the program, once more with the log, for the debug line.
    let load = |log: &mut [u8]| {
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: (code.len() / 8) as u32,
            insns: code.as_ptr() as u64,
            license: c"Apache-2.0".as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: 0,
        };
        // SAFETY: bpf(2) with a valid attr whose pointers outlive the call.
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoadAttr,
                std::mem::size_of::<ProgLoadAttr>(),
            )
        }
    };
    let fd = load(&mut []);
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let mut log = vec![0u8; 1 << 16];
        load(&mut log);
        let verifier = String::from_utf8_lossy(&log);
        tracing::debug!(path = %dir.display(), verifier = %verifier.trim_end_matches('\0'), "device filter refused by the kernel");
        return Err(fail("BPF_PROG_LOAD", e));
    }
    // SAFETY: a new fd the kernel returned, owned here.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir).map_err(|e| fail("open", e))?;
    let attach = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: bpf(2) with a valid attr of open fds.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if r < 0 {
        return Err(fail("BPF_PROG_ATTACH", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_rules_read_as_runc_writes_them() {
        let v: Vec<String> = DEFAULT_ALLOWED.iter().map(Rule::v1).collect();
        assert_eq!(&v[..3], ["c *:* m", "b *:* m", "c 1:3 rwm"]);
        assert_eq!(v[9], "c 136:* rwm");
        assert_eq!(ALLOW_ALL.v1(), "a");
    }

    #[test]
    fn the_program_jumps_to_the_next_rule_on_a_mismatch() {
        let p = program(&[DEFAULT_ALLOWED[0], DEFAULT_ALLOWED[2]]);
        // 6 loads, rule 1 (type, 3 access, return: 6), rule 2 (type, major, minor, return: 5),
        // the final refusal (2).
        assert_eq!(p.len(), 6 + 6 + 5 + 2);
        assert_eq!((p[6].code, p[6].off, p[6].imm), (JNE_K, 5, DEV_CHAR));
        assert_eq!((p[9].code, p[9].off), (JNE_K, 2));
        assert_eq!((p[12].code, p[12].off, p[12].imm), (JNE_K, 4, DEV_CHAR));
        assert_eq!((p[14].code, p[14].off, p[14].imm), (JNE_K, 2, 3));
        assert_eq!(p.last().map(|i| i.code), Some(EXIT));
        assert_eq!(
            insn(LDX_MEM_W, 4, 1, 4, 0).bytes(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        // Allowing everything ends the program: nothing after it would be reachable.
        let all = program(&[ALLOW_ALL, DEFAULT_ALLOWED[2]]);
        assert_eq!(all.len(), 6 + 2);
        assert_eq!((all[6].code, all[6].imm), (ALU64_MOV_K, 1));
    }
}
