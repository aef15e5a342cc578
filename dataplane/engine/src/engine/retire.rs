//! Closing the sockets of removed devices off the control thread.
//!
//! Closing a bound AF_XDP socket waits for an RCU grace period in the kernel (`xsk_release`
//! unbinds with `synchronize_net`), and so does detaching an XDP program from a veth: together
//! they were most of a port removal's 35–60 ms at a thousand ports. Neither has to happen before
//! the removal is answered: once the worker has let go of the device, no frame reaches or
//! leaves it through mvdp. So the control thread hands what is left to the retirer, which closes
//! it and then tells the device's worker to take back the frames the kernel held on its rings
//! (`Command::Reclaim`). Until then those frames are counted as on fill rings, so the UMEM books
//! balance throughout.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{unbounded, RecvTimeoutError, Sender};

use super::{wake, Command, Device};

/// How long without a removal ends a spell of them (then the heap is trimmed).
const QUIET: Duration = Duration::from_secs(1);

/// Something to drop once the socket is closed, along with it (a port's XDP link, say).
pub type Keepsake = Box<dyn Any + Send>;

enum Job {
    Retire(Retiree),
    /// Answered once every job queued before it is done.
    Flush(Sender<()>),
}

/// A device its worker has let go of, and what to drop with it.
pub(crate) struct Retiree {
    pub(crate) dev: Option<Box<Device>>,
    pub(crate) keep: Option<Keepsake>,
    pub(crate) uid: u32,
    pub(crate) worker: Sender<Command>,
    pub(crate) wake: Arc<OwnedFd>,
}

impl Retiree {
    fn finish(self) {
        // The socket first: the worker may reclaim only what the kernel has let go of.
        drop(self.dev);
        drop(self.keep);
        // A gone worker (engine shutting down) has nothing left to reclaim.
        if self.worker.send(Command::Reclaim(self.uid)).is_ok() {
            wake(&self.wake);
        }
    }
}

/// The retiring thread and its queue. Dropping it finishes every queued job first.
pub(crate) struct Retirer {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Retirer {
    pub(crate) fn start() -> std::io::Result<Retirer> {
        let (tx, rx) = unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("mvdp-retire".into())
            .spawn(move || {
                let mut retired = false;
                loop {
                    match rx.recv_timeout(QUIET) {
                        Ok(Job::Retire(r)) => {
                            r.finish();
                            retired = true;
                        }
                        Ok(Job::Flush(done)) => {
                            let _ = done.send(());
                        }
                        // A spell of removals is over: what they freed goes back to the kernel.
                        Err(RecvTimeoutError::Timeout) if std::mem::take(&mut retired) => {
                            mvdp_ebpf::release_free_heap();
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Retirer {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a removed device: its socket closed, then what it keeps dropped, then its frames
    /// reclaimed by its worker. Done inline if the thread is gone, so nothing is leaked.
    pub(crate) fn retire(&self, r: Retiree) {
        let Some(tx) = &self.jobs else {
            return r.finish();
        };
        if let Err(e) = tx.send(Job::Retire(r)) {
            if let Job::Retire(r) = e.into_inner() {
                r.finish();
            }
        }
    }

    /// Waits until every device queued so far is closed and its reclaim sent to its worker.
    pub(crate) fn flush(&self) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if let Some(jobs) = &self.jobs {
            if jobs.send(Job::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }
}

impl Drop for Retirer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
