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

/// Gives the pages a walk has passed back to the page cache, so the resident size of a
/// process reading a file of many GB stays bounded (the pages stay cached for other readers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropBehind<'a> {
    map: Option<&'a memmap2::Mmap>,
    released: usize,
}

/// Release in steps this large, keeping the last `DROP_BEHIND_KEEP` bytes mapped.
const DROP_BEHIND_STEP: usize = 16 << 20;
const DROP_BEHIND_KEEP: usize = 1 << 20;

impl<'a> DropBehind<'a> {
    pub(crate) const NONE: DropBehind<'static> = DropBehind {
        map: None,
        released: 0,
    };

    pub(crate) fn new(bytes: &'a Bytes) -> Self {
        match bytes {
            Bytes::Mapped(map) => DropBehind {
                map: Some(map),
                released: 0,
            },
            Bytes::Owned(_) => DropBehind {
                map: None,
                released: 0,
            },
        }
    }

    /// Called with the walk's position; cheap unless a step has been passed.
    #[inline]
    pub(crate) fn advance(&mut self, pos: usize) {
        if pos >= self.released + DROP_BEHIND_STEP + DROP_BEHIND_KEEP {
            self.release(pos - DROP_BEHIND_KEEP);
        }
    }

    /// Called when the walk has reached the end: nothing behind it is needed any more (a merge
    /// of thousands of small files then holds only the pages of the files still being read).
    #[cold]
    pub(crate) fn finish(&mut self, len: usize) {
        if len > self.released {
            self.release(len);
        }
    }

    #[cold]
    fn release(&mut self, upto: usize) {
        if let Some(map) = self.map {
            // SAFETY: the map is read-only and private, and nothing ever writes through it, so
            // MADV_DONTNEED only drops page-table entries: a later read of a record handed out
            // earlier faults the same bytes in again from the file. The range is inside the map.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released,
                    upto - self.released,
                )
            };
        }
        self.released = upto;
    }
}

/// How far ahead of the walk every cache line is requested.
pub(crate) const PREFETCH_DISTANCE: usize = 8192;

/// Requests every cache line from `*ahead` up to `pos + PREFETCH_DISTANCE`, and moves `ahead`.
/// Walking record headers is bound by memory latency (each position is known only after the
/// previous header is read) and the hardware prefetcher does not follow the jumps from header
/// to header; prefetching the whole window keeps the walk at memory bandwidth.
#[inline]
pub(crate) fn prefetch_window(slice: &[u8], pos: usize, ahead: &mut usize) {
    let target = (pos + PREFETCH_DISTANCE).min(slice.len());
    if *ahead < pos {
        *ahead = pos;
    }
    while *ahead < target {
        prefetch(slice, *ahead);
        *ahead += 64;
    }
}

/// Hints the CPU to start loading the first `lines` cache lines of `value`: for a caller that
/// knows which record it will touch next (analyze's connection table, packets ahead).
#[inline]
pub fn prefetch_value<T>(value: &T, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = std::ptr::from_ref(value).cast::<u8>();
        let len = std::mem::size_of::<T>().min(lines * 64);
        for off in (0..len).step_by(64) {
            // SAFETY: prefetch is a hint that never faults, and the address is inside `value`.
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    start.add(off).cast::<i8>(),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (value, lines);
}

/// Hints the CPU to start loading the cache line at `slice[at]`.
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
