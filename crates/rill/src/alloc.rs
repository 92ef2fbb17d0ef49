//! The process's allocator: the system allocator, except that very large allocations are mapped
//! lazily (`MAP_NORESERVE`), so that asking for more memory than the machine has is not fatal.
//!
//! Why: `kafka-protocol` 0.18 sizes a `Vec` from an array's element count before it decodes a
//! single element (its `Array`/`CompactArray` decoders call `Vec::with_capacity(count)`). A
//! four-byte request body can claim two billion elements; the system allocator refuses the
//! hundreds of gigabytes that asks for, and Rust aborts the process on a refused allocation.
//! With this allocator the reservation succeeds as untouched address space, the decoder then
//! fails on the missing bytes, the broker answers or closes that one connection, and the
//! reservation is returned. Memory actually used still follows the bytes actually received.
//! Remove this once the decoder bounds counts by the bytes left (open upstream fixes exist).

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are mapped directly with `MAP_NORESERVE`.
const LAZY_THRESHOLD: usize = 1 << 30;
/// Mappings are page-aligned; larger alignments go to the system allocator.
const PAGE: usize = 4096;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Allocator;

fn is_lazy(layout: Layout) -> bool {
    layout.size() >= LAZY_THRESHOLD && layout.align() <= PAGE
}

#[allow(unsafe_code)]
// SAFETY: every method upholds GlobalAlloc's contract. Small layouts are forwarded unchanged to
// `System`. Large ones are served by anonymous private mappings, which are page-aligned (so any
// alignment up to PAGE is met), zero-filled, and released with `munmap` of the same length;
// `is_lazy` depends only on the layout, which `dealloc` and `realloc` receive unchanged, so a
// block is always released by the allocator that made it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(layout) {
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees (non-zero size).
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(layout) {
            map(layout.size()) // anonymous mappings are zero-filled
        } else {
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(layout) {
            // SAFETY: `ptr` came from `map(layout.size())` (see the impl's SAFETY note).
            let _ = unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `layout.align()` is valid and `new_size` fits it.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_lazy(layout) && !is_lazy(new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing the threshold (or staying above it): allocate, copy, release.
        // SAFETY: `new_layout` has a non-zero size (the caller's guarantee).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[allow(unsafe_code)]
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory; the result is checked against MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reservation_larger_than_memory_is_not_fatal() {
        // 200 GB of capacity, never touched: reserved lazily and given back.
        let v: Vec<u64> = Vec::with_capacity(25_000_000_000);
        assert!(v.capacity() >= 25_000_000_000);
        drop(v);
        // Crossing the threshold in both directions keeps the contents.
        let mut v: Vec<u8> = vec![7; 1000];
        v.reserve(super::LAZY_THRESHOLD);
        assert!(v.iter().all(|&b| b == 7));
        v.shrink_to_fit();
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|&b| b == 7));
    }
}
