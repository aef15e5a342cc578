//! The four AF_XDP rings, batch operations only. libxdp's ring helpers carry the memory
//! barriers between us and the kernel; the ring structs live in boxes because libxdp keeps
//! pointers to the fill and completion rings for as long as their socket exists.

use libxdp_sys::{
    xsk_cons_nb_avail, xsk_prod_nb_free, xsk_ring_cons, xsk_ring_cons__comp_addr,
    xsk_ring_cons__peek, xsk_ring_cons__release, xsk_ring_cons__rx_desc, xsk_ring_prod,
    xsk_ring_prod__fill_addr, xsk_ring_prod__reserve, xsk_ring_prod__submit,
    xsk_ring_prod__tx_desc, XDP_RING_NEED_WAKEUP,
};

/// One frame on a ring: its address in the UMEM (chunk base plus offset) and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
}

/// A ring we produce into (fill, TX).
pub struct ProdRing(pub(crate) Box<xsk_ring_prod>);
/// A ring we consume from (RX, completion).
pub struct ConsRing(pub(crate) Box<xsk_ring_cons>);

// SAFETY: a ring is a pair of indices and a pointer into memory the kernel mapped for this
// process; it may be used from any thread as long as one thread at a time does (&mut self).
unsafe impl Send for ProdRing {}
// SAFETY: as for ProdRing.
unsafe impl Send for ConsRing {}

impl ProdRing {
    pub(crate) fn zeroed() -> ProdRing {
        // SAFETY: xsk_ring_prod is plain integers and pointers; all-zero is the "not created"
        // state libxdp expects to fill in.
        ProdRing(Box::new(unsafe { std::mem::zeroed() }))
    }

    fn reserve(&mut self, want: usize) -> (u32, u32) {
        let r = &mut *self.0;
        // SAFETY: `r` is a ring libxdp set up on a live socket (the owner keeps it alive).
        let n = unsafe { xsk_prod_nb_free(r, want as u32) }.min(want as u32);
        if n == 0 {
            return (0, 0);
        }
        let mut idx = 0;
        // SAFETY: as above; `n` slots are known to be free, so the reservation succeeds.
        let got = unsafe { xsk_ring_prod__reserve(r, n, &mut idx) };
        (got, idx)
    }

    /// Puts as many chunk addresses as fit on a fill ring; returns how many.
    pub fn push_addrs(&mut self, addrs: &[u64]) -> usize {
        let (n, idx) = self.reserve(addrs.len());
        for (i, a) in addrs[..n as usize].iter().enumerate() {
            // SAFETY: slots idx..idx+n are reserved for us until submit.
            unsafe { *xsk_ring_prod__fill_addr(&mut *self.0, idx.wrapping_add(i as u32)) = *a };
        }
        if n > 0 {
            // SAFETY: publishes exactly the slots reserved above.
            unsafe { xsk_ring_prod__submit(&mut *self.0, n) };
        }
        n as usize
    }

    /// Puts as many descriptors as fit on a TX ring; returns how many.
    pub fn push_descs(&mut self, descs: &[Desc]) -> usize {
        let (n, idx) = self.reserve(descs.len());
        for (i, d) in descs[..n as usize].iter().enumerate() {
            // SAFETY: slots idx..idx+n are reserved for us until submit.
            let slot =
                unsafe { &mut *xsk_ring_prod__tx_desc(&mut *self.0, idx.wrapping_add(i as u32)) };
            slot.addr = d.addr;
            slot.len = d.len;
            slot.options = 0;
        }
        if n > 0 {
            // SAFETY: publishes exactly the slots reserved above.
            unsafe { xsk_ring_prod__submit(&mut *self.0, n) };
        }
        n as usize
    }

    /// The kernel asks to be woken (sendto for TX, poll for fill) to make progress.
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: `flags` points into the ring's mapped page; the kernel writes it atomically.
        let flags = unsafe { std::ptr::read_volatile(self.0.flags) };
        flags & XDP_RING_NEED_WAKEUP != 0
    }

    /// Entries produced that the kernel has not consumed yet.
    pub fn pending(&self) -> u32 {
        // SAFETY: `consumer` points into the ring's mapped page; the kernel writes it atomically.
        let cons = unsafe { std::ptr::read_volatile(self.0.consumer) };
        self.0.cached_prod.wrapping_sub(cons)
    }
}

impl ConsRing {
    pub(crate) fn zeroed() -> ConsRing {
        // SAFETY: as for ProdRing::zeroed.
        ConsRing(Box::new(unsafe { std::mem::zeroed() }))
    }

    fn peek(&mut self, want: usize) -> (u32, u32) {
        let mut idx = 0;
        // SAFETY: the ring was set up by libxdp on a live socket.
        let n = unsafe { xsk_ring_cons__peek(&mut *self.0, want as u32, &mut idx) };
        (n, idx)
    }

    /// Takes up to `out.len()` addresses off a completion ring.
    pub fn pop_addrs(&mut self, out: &mut [u64]) -> usize {
        let (n, idx) = self.peek(out.len());
        for (i, o) in out[..n as usize].iter_mut().enumerate() {
            // SAFETY: slots idx..idx+n were handed to us by peek and are not yet released.
            *o = unsafe { *xsk_ring_cons__comp_addr(&*self.0, idx.wrapping_add(i as u32)) };
        }
        if n > 0 {
            // SAFETY: gives back exactly the slots read above.
            unsafe { xsk_ring_cons__release(&mut *self.0, n) };
        }
        n as usize
    }

    /// Takes up to `out.len()` descriptors off an RX ring.
    pub fn pop_descs(&mut self, out: &mut [Desc]) -> usize {
        let (n, idx) = self.peek(out.len());
        for (i, o) in out[..n as usize].iter_mut().enumerate() {
            // SAFETY: slots idx..idx+n were handed to us by peek and are not yet released.
            let d = unsafe { &*xsk_ring_cons__rx_desc(&*self.0, idx.wrapping_add(i as u32)) };
            *o = Desc {
                addr: d.addr,
                len: d.len,
            };
        }
        if n > 0 {
            // SAFETY: gives back exactly the slots read above.
            unsafe { xsk_ring_cons__release(&mut *self.0, n) };
        }
        n as usize
    }

    /// Whether anything is waiting, without taking it.
    pub fn has_entries(&mut self) -> bool {
        // SAFETY: the ring was set up by libxdp on a live socket.
        unsafe { xsk_cons_nb_avail(&mut *self.0, 1) > 0 }
    }
}
