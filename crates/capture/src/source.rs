//! The one place with `unsafe`: mapping a capture file into memory, and prefetch hints.

#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;

/// The bytes of a capture: a read-only map of the file, or a buffer for what cannot be mapped.
#[derive(Debug)]
pub(crate) enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

/// Maps a regular file, falling back to reading it when mapping fails (some file systems).
pub(crate) fn map_or_read(file: &mut File, len: u64) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::Owned(Vec::new()));
    }
    // SAFETY: the map is read-only and private to this process. The risk is another process
    // truncating the file while it is mapped: reads past the new end then raise SIGBUS. Captures
    // being read are not expected to shrink; we accept that risk for the speed of reading in
    // place (see NOTES-dependencies.md), as ripgrep does.
    if let Ok(map) = unsafe { memmap2::MmapOptions::new().map(&*file) } {
        // Capture walks are sequential; let the kernel read ahead generously.
        let _ = map.advise(memmap2::Advice::Sequential);
        return Ok(Bytes::Mapped(map));
    }
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(Bytes::Owned(buf))
}

/// Hints the CPU to start loading the cache line at `slice[at]`. Walking record headers is
/// bound by memory latency (each position is known only after the previous header is read);
/// a prefetch some kilobytes ahead made that walk 3.5–4× faster on this machine kind.
#[inline]
pub(crate) fn prefetch(slice: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < slice.len() {
        // SAFETY: prefetch is a hint that never faults, and the address is inside the slice.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                slice.as_ptr().add(at).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, at);
}
