//! The UMEM: one anonymous mapping cut into equal chunks, registered with the kernel once and
//! shared by every socket of the process.
//!
//! libxdp registers the UMEM on its own AF_XDP socket, and the kernel only lets a new socket
//! share a UMEM through a socket that is still bound. That first socket is bound here to `lo`
//! (queue 0, copy mode), which never goes away, instead of to a parent or a port, which can.

use std::ffi::CString;
use std::io;
use std::sync::Arc;

use libxdp_sys::{
    xsk_socket, xsk_socket__create_shared, xsk_socket__delete, xsk_socket_config,
    xsk_socket_config__bindgen_ty_1, xsk_umem, xsk_umem__create, xsk_umem__delete, xsk_umem__fd,
    xsk_umem_config, XDP_COPY, XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
};

use super::ring::{ConsRing, ProdRing};

/// Bytes the kernel keeps in front of every received frame (XDP_PACKET_HEADROOM); received data
/// starts this far into its chunk, which leaves room to push a tag in place.
pub const XDP_PACKET_HEADROOM: u32 = 256;

#[derive(Clone, Copy, Debug)]
pub struct UmemConfig {
    pub frames: u32,
    /// A power of two, 2048 or 4096.
    pub frame_size: u32,
    /// Size of the anchor socket's fill and completion rings (a power of two). The anchor never
    /// receives, so this can be small; the switch's sockets size their own rings (SocketConfig).
    pub ring_size: u32,
}

pub(crate) struct UmemInner {
    pub(crate) raw: *mut xsk_umem,
    area: *mut u8,
    len: usize,
    pub(crate) cfg: UmemConfig,
    anchor: *mut xsk_socket,
    // libxdp keeps pointers to these until the anchor socket is deleted.
    _anchor_rings: (ProdRing, ConsRing, ConsRing),
}

// SAFETY: the raw pointers are a libxdp handle and a mapping owned by this value; libxdp's
// UMEM bookkeeping is only touched by the control thread (socket creation and deletion), and
// frame memory is partitioned between threads by chunk ownership (see engine::pool).
unsafe impl Send for UmemInner {}
// SAFETY: as above; shared references only read the immutable fields.
unsafe impl Sync for UmemInner {}

impl Drop for UmemInner {
    fn drop(&mut self) {
        // SAFETY: every other socket holds an Arc to this value, so they are all gone; the
        // anchor goes first, then the UMEM it registered, then the memory.
        unsafe {
            xsk_socket__delete(self.anchor);
            xsk_umem__delete(self.raw);
            libc::munmap(self.area.cast(), self.len);
        }
    }
}

/// A shared handle to the UMEM. Cloning is cheap.
#[derive(Clone)]
pub struct Umem {
    pub(crate) inner: Arc<UmemInner>,
}

impl Umem {
    /// Maps and registers `cfg.frames` chunks. Needs CAP_NET_ADMIN (and enough locked memory).
    pub fn new(cfg: UmemConfig) -> io::Result<Umem> {
        if !cfg.frame_size.is_power_of_two() || !(2048..=4096).contains(&cfg.frame_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UMEM frame size must be 2048 or 4096",
            ));
        }
        let len = cfg.frames as usize * cfg.frame_size as usize;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let area = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if area == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut fill = ProdRing::zeroed();
        let mut comp = ConsRing::zeroed();
        let ucfg = xsk_umem_config {
            fill_size: cfg.ring_size,
            comp_size: cfg.ring_size,
            frame_size: cfg.frame_size,
            frame_headroom: 0,
            flags: 0,
        };
        let mut raw = std::ptr::null_mut();
        // SAFETY: `area` is `len` bytes, page aligned, ours; the ring boxes outlive the UMEM.
        let rc = unsafe {
            xsk_umem__create(
                &mut raw,
                area,
                len as u64,
                &mut *fill.0,
                &mut *comp.0,
                &ucfg,
            )
        };
        if rc != 0 {
            // SAFETY: the mapping made above, not registered.
            unsafe { libc::munmap(area, len) };
            return Err(io::Error::from_raw_os_error(-rc));
        }
        let mut rx = ConsRing::zeroed();
        let scfg = SocketConfigRaw::copy_mode(64, 0);
        let mut anchor = std::ptr::null_mut();
        let lo = CString::new("lo").expect("no NUL");
        // SAFETY: `raw` is the UMEM just created; the first socket takes over the rings
        // xsk_umem__create made, which stay boxed in `_anchor_rings`.
        let rc = unsafe {
            xsk_socket__create_shared(
                &mut anchor,
                lo.as_ptr(),
                0,
                raw,
                &mut *rx.0,
                std::ptr::null_mut(),
                &mut *fill.0,
                &mut *comp.0,
                &scfg.0,
            )
        };
        if rc != 0 {
            // SAFETY: nothing else uses the UMEM yet.
            unsafe {
                xsk_umem__delete(raw);
                libc::munmap(area, len);
            }
            return Err(io::Error::new(
                io::Error::from_raw_os_error(-rc).kind(),
                format!(
                    "binding the UMEM's anchor socket to lo: {}",
                    io::Error::from_raw_os_error(-rc)
                ),
            ));
        }
        Ok(Umem {
            inner: Arc::new(UmemInner {
                raw,
                area: area.cast(),
                len,
                cfg,
                anchor,
                _anchor_rings: (fill, comp, rx),
            }),
        })
    }

    pub fn frames(&self) -> u32 {
        self.inner.cfg.frames
    }

    pub fn frame_size(&self) -> u32 {
        self.inner.cfg.frame_size
    }

    /// The chunk a UMEM address falls in.
    #[inline]
    pub fn chunk_of(&self, addr: u64) -> u32 {
        (addr / u64::from(self.inner.cfg.frame_size)) as u32
    }

    /// The UMEM's own socket descriptor (for diagnostics).
    pub fn fd(&self) -> i32 {
        // SAFETY: the UMEM is alive while `self` is.
        unsafe { xsk_umem__fd(self.inner.raw) }
    }

    /// The bytes of chunk `chunk`.
    ///
    /// # Safety
    /// The caller must own the chunk: it is on no ring the kernel may write, and no other
    /// thread or live slice refers to it.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn chunk_mut(&self, chunk: u32) -> &mut [u8] {
        debug_assert!(chunk < self.inner.cfg.frames);
        let fs = self.inner.cfg.frame_size as usize;
        // SAFETY: in bounds (chunk < frames); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.inner.area.add(chunk as usize * fs), fs) }
    }
}

/// libxdp's socket options: copy mode, need_wakeup, no program loading (mvdp attaches its own).
struct SocketConfigRaw(xsk_socket_config);

impl SocketConfigRaw {
    fn copy_mode(rx_size: u32, tx_size: u32) -> SocketConfigRaw {
        SocketConfigRaw(xsk_socket_config {
            rx_size,
            tx_size,
            __bindgen_anon_1: xsk_socket_config__bindgen_ty_1 {
                libxdp_flags: XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
            },
            xdp_flags: 0,
            bind_flags: (XDP_COPY | libxdp_sys::XDP_USE_NEED_WAKEUP) as u16,
        })
    }
}
