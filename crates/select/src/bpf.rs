//! Classic BPF, run as libpcap's `bpf_filter` runs it: the programs come from libpcap's own
//! compiler (`libpcap.rs`), so tcpdump's expression semantics are libpcap's by construction.
//! The interpreter is written here, on the hot path, because a call into libpcap per packet
//! would cost the FFI and a `pcap_pkthdr` per packet; it is checked packet for packet against
//! `tcpdump -r FILE -w - EXPR` in the tests. Loads outside the captured bytes reject the packet
//! (as libpcap does); `len` is the length on the wire.

use std::fmt;

/// One instruction as libpcap lays it out (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A decoded instruction: validated once, so running cannot index out of bounds.
#[derive(Debug, Clone, Copy)]
enum Op {
    RetK(u32),
    RetA,
    LdAbs(Size, u32),
    LdInd(Size, u32),
    LdLen,
    LdxLen,
    LdImm(u32),
    LdxImm(u32),
    LdMem(usize),
    LdxMem(usize),
    LdxMsh(u32),
    St(usize),
    Stx(usize),
    Alu(AluOp, Src),
    Neg,
    Ja(usize),
    Jmp(JmpOp, Src, usize, usize),
    Tax,
    Txa,
}

#[derive(Debug, Clone, Copy)]
enum Size {
    W,
    H,
    B,
}

#[derive(Debug, Clone, Copy)]
enum Src {
    K(u32),
    X,
}

#[derive(Debug, Clone, Copy)]
enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Lsh,
    Rsh,
}

#[derive(Debug, Clone, Copy)]
enum JmpOp {
    Eq,
    Gt,
    Ge,
    Set,
}

const MEMWORDS: usize = 16;

/// A validated program.
#[derive(Clone)]
pub struct Program {
    ops: Vec<Op>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Program({} instructions)", self.ops.len())
    }
}

impl Program {
    /// Checks what libpcap's `bpf_validate` checks (known opcodes, jumps forward and inside the
    /// program, scratch memory indexes, no constant division by zero, a return at the end).
    pub fn new(insns: &[Insn]) -> Result<Program, String> {
        if insns.is_empty() {
            return Err("empty program".into());
        }
        let n = insns.len();
        let ops = insns
            .iter()
            .enumerate()
            .map(|(pc, &i)| decode(pc, i, n))
            .collect::<Result<Vec<Op>, String>>()?;
        if !matches!(ops[n - 1], Op::RetK(_) | Op::RetA) {
            return Err("the program does not end with a return".into());
        }
        Ok(Program { ops })
    }

    /// Runs the program over `data` (the captured bytes) of a packet `wire_len` bytes long on
    /// the wire; true when it accepts (returns non-zero).
    #[must_use]
    pub fn matches(&self, data: &[u8], wire_len: u32) -> bool {
        let (mut acc, mut xr) = (0u32, 0u32);
        let mut mem = [0u32; MEMWORDS];
        let mut pc = 0;
        // Jumps only go forward and the last instruction returns, so this ends.
        loop {
            let Some(&op) = self.ops.get(pc) else {
                return false;
            };
            pc += 1;
            match op {
                Op::RetK(k) => return k != 0,
                Op::RetA => return acc != 0,
                Op::LdAbs(s, k) => match load(data, s, u64::from(k)) {
                    Some(v) => acc = v,
                    None => return false,
                },
                Op::LdInd(s, k) => match load(data, s, u64::from(xr) + u64::from(k)) {
                    Some(v) => acc = v,
                    None => return false,
                },
                Op::LdLen => acc = wire_len,
                Op::LdxLen => xr = wire_len,
                Op::LdImm(k) => acc = k,
                Op::LdxImm(k) => xr = k,
                Op::LdMem(m) => acc = mem[m],
                Op::LdxMem(m) => xr = mem[m],
                Op::LdxMsh(k) => match data.get(k as usize) {
                    Some(&b) => xr = u32::from(b & 0x0f) << 2,
                    None => return false,
                },
                Op::St(m) => mem[m] = acc,
                Op::Stx(m) => mem[m] = xr,
                Op::Alu(op, src) => {
                    let v = match src {
                        Src::K(k) => k,
                        Src::X => xr,
                    };
                    acc = match op {
                        AluOp::Add => acc.wrapping_add(v),
                        AluOp::Sub => acc.wrapping_sub(v),
                        AluOp::Mul => acc.wrapping_mul(v),
                        AluOp::Div => match acc.checked_div(v) {
                            Some(q) => q,
                            None => return false,
                        },
                        AluOp::Mod => match acc.checked_rem(v) {
                            Some(r) => r,
                            None => return false,
                        },
                        AluOp::And => acc & v,
                        AluOp::Or => acc | v,
                        AluOp::Xor => acc ^ v,
                        AluOp::Lsh => acc.checked_shl(v).unwrap_or(0),
                        AluOp::Rsh => acc.checked_shr(v).unwrap_or(0),
                    };
                }
                Op::Neg => acc = acc.wrapping_neg(),
                Op::Ja(t) => pc = t,
                Op::Jmp(op, src, jt, jf) => {
                    let v = match src {
                        Src::K(k) => k,
                        Src::X => xr,
                    };
                    let taken = match op {
                        JmpOp::Eq => acc == v,
                        JmpOp::Gt => acc > v,
                        JmpOp::Ge => acc >= v,
                        JmpOp::Set => acc & v != 0,
                    };
                    pc = if taken { jt } else { jf };
                }
                Op::Tax => xr = acc,
                Op::Txa => acc = xr,
            }
        }
    }
}

/// Instruction `pc` of a program `n` long, decoded and checked.
fn decode(pc: usize, i: Insn, n: usize) -> Result<Op, String> {
    let bad = || format!("instruction {pc}: unsupported opcode {:#06x}", i.code);
    let mem = |k: u32| {
        if (k as usize) < MEMWORDS {
            Ok(k as usize)
        } else {
            Err(format!("instruction {pc}: scratch memory index {k}"))
        }
    };
    let target = |off: u32| {
        let t = pc + 1 + off as usize;
        if t < n {
            Ok(t)
        } else {
            Err(format!("instruction {pc}: jump past the end"))
        }
    };
    let size = match i.code & 0x18 {
        0x00 => Some(Size::W),
        0x08 => Some(Size::H),
        0x10 => Some(Size::B),
        _ => None,
    };
    let src = if i.code & 0x08 == 0 {
        Src::K(i.k)
    } else {
        Src::X
    };
    let op = match i.code & 0x07 {
        0x00 => match (i.code & 0xe0, size) {
            (0x00, Some(Size::W)) => Op::LdImm(i.k),
            (0x20, Some(s)) => Op::LdAbs(s, i.k),
            (0x40, Some(s)) => Op::LdInd(s, i.k),
            (0x60, Some(Size::W)) => Op::LdMem(mem(i.k)?),
            (0x80, Some(Size::W)) => Op::LdLen,
            _ => return Err(bad()),
        },
        0x01 => match (i.code & 0xe0, size) {
            (0x00, Some(Size::W)) => Op::LdxImm(i.k),
            (0x60, Some(Size::W)) => Op::LdxMem(mem(i.k)?),
            (0x80, Some(Size::W)) => Op::LdxLen,
            (0xa0, Some(Size::B)) => Op::LdxMsh(i.k),
            _ => return Err(bad()),
        },
        0x02 => Op::St(mem(i.k)?),
        0x03 => Op::Stx(mem(i.k)?),
        0x04 => {
            let op = match i.code & 0xf0 {
                0x00 => AluOp::Add,
                0x10 => AluOp::Sub,
                0x20 => AluOp::Mul,
                0x30 => AluOp::Div,
                0x40 => AluOp::Or,
                0x50 => AluOp::And,
                0x60 => AluOp::Lsh,
                0x70 => AluOp::Rsh,
                0x80 => return Ok(Op::Neg),
                0x90 => AluOp::Mod,
                0xa0 => AluOp::Xor,
                _ => return Err(bad()),
            };
            if matches!(op, AluOp::Div | AluOp::Mod) && matches!(src, Src::K(0)) {
                return Err(format!("instruction {pc}: division by zero"));
            }
            Op::Alu(op, src)
        }
        0x05 => {
            if i.code & 0xf0 == 0x00 {
                Op::Ja(target(i.k)?)
            } else {
                let op = match i.code & 0xf0 {
                    0x10 => JmpOp::Eq,
                    0x20 => JmpOp::Gt,
                    0x30 => JmpOp::Ge,
                    0x40 => JmpOp::Set,
                    _ => return Err(bad()),
                };
                Op::Jmp(op, src, target(u32::from(i.jt))?, target(u32::from(i.jf))?)
            }
        }
        0x06 => match i.code & 0x18 {
            0x00 => Op::RetK(i.k),
            0x10 => Op::RetA,
            _ => return Err(bad()),
        },
        _ => match i.code & 0xf8 {
            0x00 => Op::Tax,
            0x80 => Op::Txa,
            _ => return Err(bad()),
        },
    };
    Ok(op)
}

/// A big-endian load of `size` at `at`, `None` past the captured bytes.
#[inline]
fn load(data: &[u8], size: Size, at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    match size {
        Size::W => data
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        Size::H => data
            .get(at..at.checked_add(2)?)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
        Size::B => data.get(at).map(|&b| u32::from(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// `ip` on Ethernet, as `tcpdump -d ip` prints it.
    fn ethertype_ipv4() -> Program {
        Program::new(&[
            insn(0x28, 0, 0, 12),
            insn(0x15, 0, 1, 0x0800),
            insn(0x06, 0, 0, 262_144),
            insn(0x06, 0, 0, 0),
        ])
        .unwrap()
    }

    #[test]
    fn runs_a_program_and_rejects_loads_past_the_capture() {
        let p = ethertype_ipv4();
        let mut frame = [0u8; 14];
        frame[12] = 0x08;
        assert!(p.matches(&frame, 60));
        frame[12] = 0x86;
        assert!(!p.matches(&frame, 60));
        assert!(!p.matches(&frame[..13], 60));
    }

    #[test]
    fn len_is_the_length_on_the_wire() {
        // len >= 100
        let p = Program::new(&[
            insn(0x80, 0, 0, 0),
            insn(0x35, 0, 1, 100),
            insn(0x06, 0, 0, 1),
            insn(0x06, 0, 0, 0),
        ])
        .unwrap();
        assert!(p.matches(&[0; 10], 100));
        assert!(!p.matches(&[0; 200], 99));
    }

    #[test]
    fn refuses_programs_that_could_run_off() {
        assert!(Program::new(&[]).is_err());
        assert!(Program::new(&[insn(0x05, 0, 0, 5), insn(0x06, 0, 0, 0)]).is_err());
        assert!(Program::new(&[insn(0x60, 0, 0, 16), insn(0x06, 0, 0, 0)]).is_err());
        assert!(Program::new(&[insn(0x34, 0, 0, 0), insn(0x06, 0, 0, 0)]).is_err());
        assert!(Program::new(&[insn(0x28, 0, 0, 12)]).is_err());
        assert!(Program::new(&[insn(0xff, 0, 0, 0), insn(0x06, 0, 0, 0)]).is_err());
    }

    #[test]
    fn division_by_a_zero_register_rejects() {
        // A = 1; X = 0; A /= X; ret A
        let p = Program::new(&[
            insn(0x00, 0, 0, 1),
            insn(0x01, 0, 0, 0),
            insn(0x3c, 0, 0, 0),
            insn(0x16, 0, 0, 0),
        ])
        .unwrap();
        assert!(!p.matches(&[], 0));
    }
}
