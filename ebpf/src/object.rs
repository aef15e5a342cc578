//! Loading an embedded BPF object.

use aya::{Ebpf, EbpfLoader};

use crate::DemuxError;

/// Allocations from this size on are mapped on their own, and unmapped when freed.
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Free memory at the top of a heap beyond this goes back to the system.
const TRIM_THRESHOLD: libc::c_int = 1024 * 1024;

/// Loads `bytes` with aya without leaving its parse of the kernel's BTF resident.
///
/// aya parses the kernel's whole BTF (/sys/kernel/btf/vmlinux) for every object it loads:
/// ~19 MiB of short-lived vectors on this kernel. Freeing a large mapped allocation makes glibc
/// raise its mmap and trim thresholds to that size for the rest of the process, so afterwards
/// the daemon's heap grew by the size of its largest buffers and was never trimmed: a 2-port
/// daemon kept ~33 MiB it did not use. Fixed thresholds (setting them turns glibc's adaptation
/// off) and a trim after the load keep the process near what it uses.
///
/// `trace_hops` sets the programs' `mvdp_trace_hops` (read-only data, fixed at load): with it
/// they stamp every frame they redirect with the time (see `mvdp_abi.h`); without it the
/// verifier drops the stamping as dead code.
pub(crate) fn load(bytes: &[u8], trace_hops: bool) -> Result<Ebpf, DemuxError> {
    // SAFETY: mallopt only changes the allocator's tuning; it is thread-safe and touches no
    // live allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
    let flag = u32::from(trace_hops);
    let ebpf = EbpfLoader::new()
        .override_global("mvdp_trace_hops", &flag, true)
        .load(bytes)
        .map_err(|e| DemuxError::Load(e.to_string()));
    release_free_heap();
    ebpf
}

/// Gives the pages glibc holds free, in every arena, back to the kernel (`malloc_trim(0)`).
/// The thresholds above only trim the top of the main heap; memory freed in the middle of a
/// heap, or in a thread's arena, stays resident until this. Takes each arena's lock in turn, for
/// a few milliseconds at most: call it off the fast path, after a burst of control work (the
/// engine does after a spell of port removals: 100 removals and re-adds at 1,000 ports left
/// ~15 MiB resident that this gave back).
pub fn release_free_heap() {
    // SAFETY: malloc_trim only releases memory the allocator holds free; no live allocation
    // is touched, and it is thread-safe (it takes each arena's lock).
    unsafe { libc::malloc_trim(0) };
}
