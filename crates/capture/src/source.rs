//! The one place with `unsafe`: mapping a capture file into memory, prefetch hints, and the
//! allocator that asks for huge pages.

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

    /// For a walk that starts at `pos`: nothing before it is released.
    pub(crate) fn starting_at(mut self, pos: usize) -> Self {
        self.released = pos;
        self
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

/// The system allocator, asking the kernel for transparent huge pages (2 MiB) for every block
/// of [`HUGE_FROM`] bytes or more: analyze's connection tables, packet logs and sort buffers
/// take hundreds of megabytes, and with 4 KiB pages most of their random accesses missed the
/// TLB and every 4 KiB of them cost a page fault. With the system's THP setting at `madvise`
/// (the common default) nothing else asks for them. Hand-written: a few lines over the system
/// allocator; another allocator (jemalloc, mimalloc) was not tried.
///
/// Install it in a binary with `#[global_allocator]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HugePageAlloc;

/// Blocks at least this large are advised (they contain at least one aligned huge page).
pub const HUGE_FROM: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// Advises the aligned 2 MiB pages inside a block of `len` bytes at `p`.
#[cfg(target_os = "linux")]
fn advise_huge(p: *mut u8, len: usize) {
    if p.is_null() || len < HUGE_FROM {
        return;
    }
    let start = (p as usize).next_multiple_of(HUGE_PAGE);
    let end = (p as usize + len) & !(HUGE_PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside a block the allocator just handed out; MADV_HUGEPAGE
        // only changes how its pages are backed, never their contents. A failure (THP
        // disabled, an old kernel) leaves ordinary pages.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *mut u8, _: usize) {}

// SAFETY: every call is passed through to `System` unchanged; the advice touches no byte.
unsafe impl std::alloc::GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { std::alloc::System.alloc(layout) };
        advise_huge(p, layout.size());
        p
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        advise_huge(p, layout.size());
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size < HUGE_FROM || new_size <= layout.size() {
            // SAFETY: as above.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        }
        // Growing into a large block: a fresh one, advised before its pages are touched (the
        // system's realloc would move the old pages over as they are, 4 KiB each). The copy
        // costs less than the faults it saves.
        // SAFETY: `new_size` is non-zero and, with the layout's alignment, a valid layout
        // (the caller's contract); the blocks do not overlap, and `ptr` is freed once.
        unsafe {
            let new = std::alloc::Layout::from_size_align_unchecked(new_size, layout.align());
            let p = self.alloc(new);
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size());
                std::alloc::System.dealloc(ptr, layout);
            }
            p
        }
    }
}

/// Has the system allocator map every block of `bytes` or more on its own, and unmap it when
/// it is freed, for a command whose memory is mostly a few large tables built in phases
/// (analyze). glibc's default raises this threshold to the size of each large block freed
/// (up to 32 MB), then keeps later blocks below it in its heaps, where what a growing table
/// left behind (each doubling frees the last) stays resident: 60 MB of the 400 MB a port
/// scan's pair peaked at. A no-op elsewhere.
pub fn map_large_blocks(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes how later requests are served; blocks in use are left as
    // they are. A failure (a value out of range) leaves the default.
    unsafe {
        libc::mallopt(
            libc::M_MMAP_THRESHOLD,
            libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX),
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout};

    #[test]
    fn blocks_grown_past_the_huge_page_threshold_keep_their_bytes() {
        let alloc = HugePageAlloc;
        let small = Layout::from_size_align(1 << 20, 64).unwrap();
        // SAFETY: layouts are non-zero; each block is used within its size and freed once.
        unsafe {
            let first = alloc.alloc(small);
            assert!(!first.is_null());
            for i in 0..small.size() {
                *first.add(i) = (i % 251) as u8;
            }
            // Growing past HUGE_FROM takes a fresh block and copies.
            let big = 3 * HUGE_FROM;
            let grown = alloc.realloc(first, small, big);
            assert!(!grown.is_null());
            assert_eq!(grown as usize % 64, 0, "alignment kept");
            assert!((0..small.size()).all(|i| *grown.add(i) == (i % 251) as u8));
            *grown.add(big - 1) = 7;
            // Shrinking goes through the system allocator.
            let big_layout = Layout::from_size_align(big, 64).unwrap();
            let shrunk = alloc.realloc(grown, big_layout, small.size());
            assert!((0..small.size()).all(|i| *shrunk.add(i) == (i % 251) as u8));
            alloc.dealloc(shrunk, small);
            let z = Layout::from_size_align(HUGE_FROM * 2, 8).unwrap();
            let zeroed = alloc.alloc_zeroed(z);
            assert!((0..z.size()).step_by(4096).all(|i| *zeroed.add(i) == 0));
            alloc.dealloc(zeroed, z);
        }
    }
}
