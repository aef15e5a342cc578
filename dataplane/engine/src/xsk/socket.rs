//! One AF_XDP socket on one (device, queue), with its own fill and completion rings: the switch
//! binds one socket per parent rx queue and one per port veth, so no two sockets share rings.
//!
//! The socket is made here with the kernel's own calls rather than libxdp's
//! `xsk_socket__create_shared`, because libxdp gives every socket sharing a UMEM the fill and
//! completion ring sizes the UMEM was created with. A port needs far smaller rings than a parent
//! queue, and at a thousand ports the difference is most of the daemon's memory. The rings are
//! mapped without MAP_POPULATE, so the pages of an idle port's rings that nobody touches are not
//! resident in the daemon. libxdp's ring structs and their inline helpers (ring.rs) are still
//! what reads and writes the rings.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use libxdp_sys::{xsk_ring_cons, xsk_ring_prod};

use super::ring::{ConsRing, ProdRing};
use super::umem::{Umem, UmemInner};

/// The sizes of a socket's four rings, in descriptors (each a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    pub fill_size: u32,
    pub comp_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
}

impl SocketConfig {
    /// A parent NIC queue: everything from the wire arrives here, and its fill target may grow
    /// to 4,096 chunks.
    pub const PARENT: SocketConfig = SocketConfig {
        fill_size: 4096,
        comp_size: 2048,
        rx_size: 2048,
        tx_size: 2048,
    };

    /// A port veth. Fill and RX hold the 2,048 chunks a busy port's fill target may grow to
    /// (a burst the worker has not yet taken must fit on both). TX and completion are small:
    /// copy mode sends synchronously, so a flush that finds the TX ring full kicks it empty,
    /// reaps the completions and pushes the rest (engine::worker::flush).
    pub const PORT: SocketConfig = SocketConfig {
        fill_size: 2048,
        comp_size: 256,
        rx_size: 2048,
        tx_size: 256,
    };

    /// Bytes of kernel memory the four rings take (descriptors only, without each ring's
    /// page of indices).
    pub fn ring_bytes(&self) -> u64 {
        let addr = std::mem::size_of::<u64>() as u64;
        let desc = std::mem::size_of::<libc::xdp_desc>() as u64;
        u64::from(self.fill_size + self.comp_size) * addr
            + u64::from(self.rx_size + self.tx_size) * desc
    }

    fn check(&self) -> io::Result<()> {
        let sizes = [self.fill_size, self.comp_size, self.rx_size, self.tx_size];
        if sizes.iter().all(|s| s.is_power_of_two()) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("AF_XDP ring sizes must be powers of two: {self:?}"),
            ))
        }
    }
}

/// One ring's mapping, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are a mapping made by `map_ring` and unmapped only here; the ring
        // struct pointing into it is dropped with it (both belong to the same XskSocket).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

pub struct XskSocket {
    pub rx: ConsRing,
    pub tx: ProdRing,
    pub fill: ProdRing,
    pub comp: ConsRing,
    // Declared after the rings so the maps outlive nothing that points into them, and before
    // the descriptor, which is closed last.
    _maps: [Mapping; 4],
    fd: OwnedFd,
    ifname: String,
    queue: u32,
    _umem: Arc<UmemInner>,
}

// SAFETY: the socket and its mappings are only used by their owner (&mut self or drop); see
// ProdRing.
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Binds a socket to (`ifname`, `queue`) in the calling thread's network namespace, sharing
    /// `umem`, in the UMEM's copy mode with need_wakeup (a socket sharing a UMEM inherits the
    /// bind flags of the socket that registered it). The device must not already have a socket
    /// on that queue from this UMEM.
    pub fn new(umem: &Umem, ifname: &str, queue: u32, cfg: SocketConfig) -> io::Result<XskSocket> {
        cfg.check()?;
        let name = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        let context = |e: io::Error, what: &str| {
            io::Error::new(
                e.kind(),
                format!("AF_XDP socket on {ifname} queue {queue}: {what}: {e}"),
            )
        };
        // SAFETY: a plain C string lookup.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(context(io::Error::last_os_error(), "no such interface"));
        }
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(context(io::Error::last_os_error(), "socket"));
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sizes = [
            (libc::XDP_UMEM_FILL_RING, cfg.fill_size, "fill ring"),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                cfg.comp_size,
                "completion ring",
            ),
            (libc::XDP_RX_RING, cfg.rx_size, "RX ring"),
            (libc::XDP_TX_RING, cfg.tx_size, "TX ring"),
        ];
        for (opt, size, what) in sizes {
            set_ring_size(fd.as_raw_fd(), opt, size).map_err(|e| context(e, what))?;
        }
        let off = mmap_offsets(fd.as_raw_fd()).map_err(|e| context(e, "ring offsets"))?;
        let addr = std::mem::size_of::<u64>();
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let fd_raw = fd.as_raw_fd();
        let (fill_map, fill) = map_prod(fd_raw, &off.fr, cfg.fill_size, addr, FILL_PGOFF)
            .map_err(|e| context(e, "mapping the fill ring"))?;
        let (comp_map, comp) = map_cons(fd_raw, &off.cr, cfg.comp_size, addr, COMP_PGOFF)
            .map_err(|e| context(e, "mapping the completion ring"))?;
        let (rx_map, rx) = map_cons(fd_raw, &off.rx, cfg.rx_size, desc, RX_PGOFF)
            .map_err(|e| context(e, "mapping the RX ring"))?;
        let (tx_map, tx) = map_prod(fd_raw, &off.tx, cfg.tx_size, desc, TX_PGOFF)
            .map_err(|e| context(e, "mapping the TX ring"))?;
        super::retry_busy(|| bind_shared(fd_raw, ifindex, queue, umem.fd()))
            .map_err(|e| context(e, "bind"))?;
        Ok(XskSocket {
            rx,
            tx,
            fill,
            comp,
            _maps: [fill_map, comp_map, rx_map, tx_map],
            fd,
            ifname: ifname.into(),
            queue,
            _umem: umem.inner.clone(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Asks the kernel to transmit what is on the TX ring. In copy mode each call sends a
    /// bounded batch, so callers repeat while `tx.pending()` stays non-zero.
    pub fn kick_tx(&self) -> io::Result<()> {
        // SAFETY: a zero-length sendto on our own socket; no memory is passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Busy or out of buffers: the ring keeps the frames, the next kick retries.
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN) => {
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Wakes the kernel to refill from the fill ring (need_wakeup on the fill ring).
    pub fn kick_rx(&self) {
        // SAFETY: a zero-length non-blocking recvfrom on our own socket.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }
}

/// The kernel's per-socket counters (XDP_STATISTICS): frames it had to drop, and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// Reads a socket's XDP_STATISTICS.
pub fn xsk_statistics(fd: RawFd) -> io::Result<XskStatistics> {
    // SAFETY: xdp_statistics is plain integers; all-zero is valid.
    let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `st`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut st as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(XskStatistics {
        rx_dropped: st.rx_dropped,
        rx_invalid_descs: st.rx_invalid_descs,
        tx_invalid_descs: st.tx_invalid_descs,
        rx_ring_full: st.rx_ring_full,
        rx_fill_ring_empty: st.rx_fill_ring_empty_descs,
        tx_ring_empty: st.tx_ring_empty_descs,
    })
}

// The offsets at which each ring is mapped from the socket (linux/if_xdp.h).
const RX_PGOFF: libc::off_t = libc::XDP_PGOFF_RX_RING;
const TX_PGOFF: libc::off_t = libc::XDP_PGOFF_TX_RING;
const FILL_PGOFF: libc::off_t = libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t;
const COMP_PGOFF: libc::off_t = libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t;

fn set_ring_size(fd: RawFd, opt: libc::c_int, size: u32) -> io::Result<()> {
    // SAFETY: setsockopt reads exactly size_of::<u32>() bytes from `size`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (&size as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mmap_offsets(fd: RawFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: xdp_mmap_offsets is plain integers; all-zero is valid.
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `off`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&mut off as *mut libc::xdp_mmap_offsets).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Kernels before 5.4 answer without the `flags` offsets, which need_wakeup relies on.
    if len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel's AF_XDP has no ring flags (need_wakeup); Linux 5.4 or newer is needed",
        ));
    }
    Ok(off)
}

/// The ring's indices, flags and descriptors in one mapping of `len` bytes at `ptr`.
struct RingPointers {
    producer: *mut u32,
    consumer: *mut u32,
    flags: *mut u32,
    ring: *mut libc::c_void,
    /// The producer and consumer indices of the fresh ring.
    prod: u32,
    cons: u32,
}

fn map_ring(
    fd: RawFd,
    off: &libc::xdp_ring_offset,
    entries: u32,
    entry_size: usize,
    pgoff: libc::off_t,
) -> io::Result<(Mapping, RingPointers)> {
    let len = off.desc as usize + entries as usize * entry_size;
    // SAFETY: maps the ring the kernel made for this socket at `pgoff`, `len` bytes as the
    // kernel's offsets describe it; the result is checked. No MAP_POPULATE: pages are mapped
    // in as they are touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            pgoff,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = ptr.cast::<u8>();
    // SAFETY: the kernel's offsets lie within the `len` bytes just mapped; a fresh ring's
    // indices are read once here, as libxdp does.
    let pointers = unsafe {
        let producer: *mut u32 = base.add(off.producer as usize).cast();
        let consumer: *mut u32 = base.add(off.consumer as usize).cast();
        RingPointers {
            producer,
            consumer,
            flags: base.add(off.flags as usize).cast(),
            ring: base.add(off.desc as usize).cast(),
            prod: std::ptr::read_volatile(producer),
            cons: std::ptr::read_volatile(consumer),
        }
    };
    Ok((Mapping { ptr, len }, pointers))
}

/// Maps a ring we produce into (fill, TX), set up the way libxdp's helpers expect: the cached
/// consumer runs `entries` ahead of the real one, so "free slots" is a subtraction.
fn map_prod(
    fd: RawFd,
    off: &libc::xdp_ring_offset,
    entries: u32,
    entry_size: usize,
    pgoff: libc::off_t,
) -> io::Result<(Mapping, ProdRing)> {
    let (map, p) = map_ring(fd, off, entries, entry_size, pgoff)?;
    let ring = xsk_ring_prod {
        cached_prod: p.prod,
        cached_cons: p.cons.wrapping_add(entries),
        mask: entries - 1,
        size: entries,
        producer: p.producer,
        consumer: p.consumer,
        ring: p.ring,
        flags: p.flags,
    };
    Ok((map, ProdRing(Box::new(ring))))
}

/// Maps a ring we consume from (RX, completion).
fn map_cons(
    fd: RawFd,
    off: &libc::xdp_ring_offset,
    entries: u32,
    entry_size: usize,
    pgoff: libc::off_t,
) -> io::Result<(Mapping, ConsRing)> {
    let (map, p) = map_ring(fd, off, entries, entry_size, pgoff)?;
    let ring = xsk_ring_cons {
        cached_prod: p.prod,
        cached_cons: p.cons,
        mask: entries - 1,
        size: entries,
        producer: p.producer,
        consumer: p.consumer,
        ring: p.ring,
        flags: p.flags,
    };
    Ok((map, ConsRing(Box::new(ring))))
}

/// Binds to (ifindex, queue) sharing the UMEM registered on `umem_fd`. The kernel refuses bind
/// flags on a sharing socket: copy mode and need_wakeup come from the UMEM's first socket.
fn bind_shared(fd: RawFd, ifindex: u32, queue: u32, umem_fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr_xdp is plain integers; all-zero is valid.
    let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
    sa.sxdp_family = libc::AF_XDP as libc::sa_family_t;
    sa.sxdp_flags = libc::XDP_SHARED_UMEM;
    sa.sxdp_ifindex = ifindex;
    sa.sxdp_queue_id = queue;
    sa.sxdp_shared_umem_fd = umem_fd as u32;
    // SAFETY: bind reads exactly size_of::<sockaddr_xdp>() bytes from `sa`.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_xdp).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
