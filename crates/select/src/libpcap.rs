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

type OpenOffline = unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut c_void;
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

    /// Compiles `expr` for link type `linktype` (a LINKTYPE_ value) as `tcpdump -r` does
    /// (optimised, netmask 0), returning the program's instructions or libpcap's error message.
    ///
    /// libpcap compiles differently for a capture file than for a live interface (BSD
    /// loopback's address families, for one), so the handle is a real file: an empty pcap of
    /// that link type, in this machine's byte order.
    pub fn compile(&self, linktype: u16, expr: &str) -> Result<Vec<Insn>, String> {
        let cexpr =
            CString::new(expr).map_err(|_| "the expression contains a NUL byte".to_string())?;
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes());
        header.extend_from_slice(&4u16.to_ne_bytes());
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&262_144u32.to_ne_bytes());
        header.extend_from_slice(&u32::from(linktype).to_ne_bytes());
        let file = tempfile::Builder::new()
            .prefix(".tracekit-filter-")
            .suffix(".pcap")
            .tempfile()
            .map_err(|e| format!("a temporary file for libpcap: {e}"))?;
        std::fs::write(file.path(), &header)
            .map_err(|e| format!("a temporary file for libpcap: {e}"))?;
        let cpath = CString::new(file.path().as_os_str().as_encoded_bytes())
            .map_err(|_| "a temporary path with a NUL byte".to_string())?;
        let mut errbuf = [0 as c_char; 512];
        // SAFETY: the symbols have libpcap's documented signatures (pcap/pcap.h).
        unsafe {
            let open_offline = self.symbol::<OpenOffline>(b"pcap_open_offline\0")?;
            let compile = self.symbol::<Compile>(b"pcap_compile\0")?;
            let geterr = self.symbol::<GetErr>(b"pcap_geterr\0")?;
            let freecode = self.symbol::<FreeCode>(b"pcap_freecode\0")?;
            let close = self.symbol::<Close>(b"pcap_close\0")?;
            let p = open_offline(cpath.as_ptr(), errbuf.as_mut_ptr());
            if p.is_null() {
                let why = CStr::from_ptr(errbuf.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                return Err(format!("libpcap does not take link type {linktype}: {why}"));
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
