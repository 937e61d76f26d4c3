//! libpcap's filter compiler, loaded at run time (`dlopen`) when a `--filter` is given: tcpdump's
//! grammar and semantics come from the library tcpdump itself uses, and tracekit builds and runs
//! without libpcap when no filter is asked for.
//!
//! The second place with `unsafe` in tracekit (the first is the mmap in tracekit-capture): calls
//! across the C ABI. SAFETY risks: a wrong function signature (they are libpcap's documented
//! ones, stable since 0.8), a program read past its length (the length comes from libpcap in the
//! same struct), and use after `pcap_freecode`/`pcap_close` (both are called once, after the
//! program is copied out).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};

use crate::bpf::Insn;

/// `struct bpf_program`.
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut RawInsn,
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile =
    unsafe extern "C" fn(*mut c_void, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
type GetErr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type FreeCode = unsafe extern "C" fn(*mut BpfProgram);
type Close = unsafe extern "C" fn(*mut c_void);

/// The names libpcap is installed under (Debian's libpcap0.8 ships `libpcap.so.0.8`).
const NAMES: &[&str] = &[
    "libpcap.so.0.8",
    "libpcap.so.1",
    "libpcap.so",
    "libpcap.dylib",
];

/// libpcap, loaded.
#[derive(Debug)]
pub struct Libpcap {
    lib: libloading::Library,
}

impl Libpcap {
    pub fn load() -> Result<Libpcap, String> {
        let mut last = String::new();
        for name in NAMES {
            // SAFETY: loading libpcap runs its initialisers, which have no preconditions.
            match unsafe { libloading::Library::new(name) } {
                Ok(lib) => return Ok(Libpcap { lib }),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "--filter needs libpcap, the library tcpdump uses, and it was not found ({last}); install it (Debian/Ubuntu: apt install libpcap0.8, Fedora: dnf install libpcap)"
        ))
    }

    /// Compiles `expr` for link type `dlt` (a DLT_ value) as `tcpdump -r` does (optimised,
    /// netmask 0), returning the program's instructions or libpcap's error message.
    pub fn compile(&self, dlt: i32, expr: &str) -> Result<Vec<Insn>, String> {
        let cexpr =
            CString::new(expr).map_err(|_| "the expression contains a NUL byte".to_string())?;
        // SAFETY: the symbols have libpcap's documented signatures (pcap/pcap.h).
        unsafe {
            let open_dead = self.symbol::<OpenDead>(b"pcap_open_dead\0")?;
            let compile = self.symbol::<Compile>(b"pcap_compile\0")?;
            let geterr = self.symbol::<GetErr>(b"pcap_geterr\0")?;
            let freecode = self.symbol::<FreeCode>(b"pcap_freecode\0")?;
            let close = self.symbol::<Close>(b"pcap_close\0")?;
            let p = open_dead(dlt, 262_144);
            if p.is_null() {
                return Err(format!(
                    "libpcap could not open a handle for link type {dlt}"
                ));
            }
            let mut prog = BpfProgram {
                bf_len: 0,
                bf_insns: std::ptr::null_mut(),
            };
            let result = if compile(p, &raw mut prog, cexpr.as_ptr(), 1, 0) == 0 {
                let insns = if prog.bf_insns.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize)
                        .iter()
                        .map(|i| Insn {
                            code: i.code,
                            jt: i.jt,
                            jf: i.jf,
                            k: i.k,
                        })
                        .collect()
                };
                freecode(&raw mut prog);
                Ok(insns)
            } else {
                let msg = geterr(p);
                Err(if msg.is_null() {
                    "libpcap could not compile the expression".to_string()
                } else {
                    CStr::from_ptr(msg).to_string_lossy().into_owned()
                })
            };
            close(p);
            result
        }
    }

    unsafe fn symbol<T: Copy>(&self, name: &[u8]) -> Result<T, String> {
        // SAFETY: the caller names a symbol whose type is T.
        unsafe { self.lib.get::<T>(name) }.map(|s| *s).map_err(|e| {
            format!(
                "libpcap lacks {}: {e}",
                String::from_utf8_lossy(&name[..name.len() - 1])
            )
        })
    }
}

/// The DLT_ value libpcap uses for a file's LINKTYPE_ value (they differ for a few old ones).
#[must_use]
pub fn dlt_of_linktype(linktype: u16) -> i32 {
    match linktype {
        100 => 11,  // ATM RFC 1483
        101 => 12,  // raw IP (DLT_RAW on Linux)
        102 => 15,  // SLIP BSD/OS
        103 => 16,  // PPP BSD/OS
        104 => 104, // Cisco HDLC
        117 => 117, // pflog
        l => i32::from(l),
    }
}
