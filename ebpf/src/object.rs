//! Loading an embedded BPF object.

use aya::Ebpf;

use crate::DemuxError;

/// Loads `bytes` with aya, then hands the loader's scratch memory back to the system.
///
/// aya parses the kernel's whole BTF (/sys/kernel/btf/vmlinux) for every object it loads,
/// ~19 MiB of short-lived allocations on this kernel. They are freed at once, but the allocator
/// keeps the pages, and they stayed resident in the daemon for its whole life: a third of a
/// 2-port daemon's memory. malloc_trim returns the free pages of every arena.
pub(crate) fn load(bytes: &[u8]) -> Result<Ebpf, DemuxError> {
    let ebpf = Ebpf::load(bytes).map_err(|e| DemuxError::Load(e.to_string()));
    // SAFETY: malloc_trim only releases memory the allocator holds free; no live allocation
    // is touched, and it is thread-safe (it takes each arena's lock).
    unsafe { libc::malloc_trim(0) };
    ebpf
}
