//! One AF_XDP socket on one (device, queue), with its own fill and completion rings: the switch
//! binds one socket per parent rx queue and one per port veth, so no two sockets share rings.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use libxdp_sys::{xsk_socket, xsk_socket__create_shared, xsk_socket__delete, xsk_socket__fd};

use super::ring::{ConsRing, ProdRing};
use super::umem::{SocketConfigRaw, Umem, UmemInner};

#[derive(Clone, Copy, Debug)]
pub struct SocketConfig {
    pub rx_size: u32,
    pub tx_size: u32,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            rx_size: 2048,
            tx_size: 2048,
        }
    }
}

pub struct XskSocket {
    raw: *mut xsk_socket,
    fd: RawFd,
    pub rx: ConsRing,
    pub tx: ProdRing,
    pub fill: ProdRing,
    pub comp: ConsRing,
    ifname: String,
    queue: u32,
    _umem: Arc<UmemInner>,
}

// SAFETY: the socket handle is only used by its owner (&mut self or drop); see ProdRing.
unsafe impl Send for XskSocket {}

impl XskSocket {
    /// Binds a socket to (`ifname`, `queue`) in the calling thread's network namespace, sharing
    /// `umem`, in copy mode with need_wakeup. The device must not already have a socket on
    /// that queue from this UMEM.
    pub fn new(umem: &Umem, ifname: &str, queue: u32, cfg: SocketConfig) -> io::Result<XskSocket> {
        let name = CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
        let mut rx = ConsRing::zeroed();
        let mut tx = ProdRing::zeroed();
        let mut fill = ProdRing::zeroed();
        let mut comp = ConsRing::zeroed();
        let scfg = SocketConfigRaw::copy_mode(cfg.rx_size, cfg.tx_size);
        let mut raw = std::ptr::null_mut();
        // SAFETY: the UMEM is alive (we keep an Arc); the ring boxes are owned by the returned
        // value and outlive the socket (deleted in Drop before the boxes are freed).
        let rc = unsafe {
            xsk_socket__create_shared(
                &mut raw,
                name.as_ptr(),
                queue,
                umem.inner.raw,
                &mut *rx.0,
                &mut *tx.0,
                &mut *fill.0,
                &mut *comp.0,
                &scfg.0,
            )
        };
        if rc != 0 {
            let e = io::Error::from_raw_os_error(-rc);
            return Err(io::Error::new(
                e.kind(),
                format!("AF_XDP socket on {ifname} queue {queue}: {e}"),
            ));
        }
        // SAFETY: `raw` was just created.
        let fd = unsafe { xsk_socket__fd(raw) };
        Ok(XskSocket {
            raw,
            fd,
            rx,
            tx,
            fill,
            comp,
            ifname: ifname.into(),
            queue,
            _umem: umem.inner.clone(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd
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
                self.fd,
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
                self.fd,
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

impl Drop for XskSocket {
    fn drop(&mut self) {
        // SAFETY: created in `new`, deleted once; the ring boxes are still alive here.
        unsafe { xsk_socket__delete(self.raw) };
    }
}
