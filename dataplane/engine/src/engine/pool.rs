//! UMEM chunk ownership between threads.
//!
//! Every chunk is in exactly one place: a worker's free stack, the shared spare pool, a
//! handoff queue, or a device's fill or TX ring (the kernel's). `tags` records, per chunk,
//! which device's ring holds it (0 when userspace holds it), so that a removed device's
//! chunks can be taken back once its socket is gone: the kernel never returns them itself.

use std::sync::atomic::{AtomicU32, Ordering};

use crossbeam_queue::ArrayQueue;

/// Tag bit: the chunk is on the device's TX ring (otherwise its fill ring).
pub(crate) const TAG_TX: u32 = 1 << 31;

pub(crate) struct Shared {
    /// Chunks no worker holds; workers take and give back in batches.
    pub(crate) spare: ArrayQueue<u32>,
    pub(crate) tags: Box<[AtomicU32]>,
}

impl Shared {
    pub(crate) fn new(frames: u32) -> Shared {
        let spare = ArrayQueue::new(frames as usize);
        for c in 0..frames {
            let _ = spare.push(c);
        }
        Shared {
            spare,
            tags: (0..frames).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    pub(crate) fn tag(&self, chunk: u32, tag: u32) {
        // Only the thread owning the chunk writes its tag; Relaxed is enough because a
        // chunk changes owner only through the spare pool or a handoff queue, which
        // synchronise.
        if let Some(t) = self.tags.get(chunk as usize) {
            t.store(tag, Ordering::Relaxed);
        }
    }
}

/// A worker's free chunks: a stack with room for every chunk, so it never allocates.
pub(crate) struct FreeStack {
    chunks: Vec<u32>,
}

/// Below this, a worker takes chunks from the spare pool; above `HIGH`, it gives back.
pub(crate) const LOW: usize = 256;
pub(crate) const HIGH: usize = 8192;

impl FreeStack {
    pub(crate) fn new(total: u32) -> FreeStack {
        FreeStack {
            chunks: Vec::with_capacity(total as usize),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }

    #[inline]
    pub(crate) fn push(&mut self, chunk: u32) {
        // Capacity is the UMEM's frame count and a chunk is never in two places, so this
        // never reallocates.
        self.chunks.push(chunk);
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<u32> {
        self.chunks.pop()
    }

    /// Keeps the stack between LOW and HIGH by trading with the spare pool.
    pub(crate) fn balance(&mut self, shared: &Shared, want: usize) {
        let target = want.max(LOW);
        while self.chunks.len() < target {
            match shared.spare.pop() {
                Some(c) => self.chunks.push(c),
                None => break,
            }
        }
        while self.chunks.len() > HIGH.max(target) {
            let Some(c) = self.chunks.pop() else { break };
            if let Err(c) = shared.spare.push(c) {
                self.chunks.push(c);
                break;
            }
        }
    }
}
