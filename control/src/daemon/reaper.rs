//! Deleting removed ports' veths off the daemon's thread.
//!
//! Deleting a link waits for the kernel: `netdev_run_todo` runs an `rcu_barrier` before it
//! answers, 15–40 ms on the VMs this was measured on, about as long as deleting a kernel macvlan.
//! A port is out of the dataplane before its veth goes, so `port rm` need not wait for that: the
//! daemon hands the host end's name to the reaper and answers. What a client could trip over
//! meanwhile is the container end's name, which a re-add into the same netns wants again; the
//! daemon renames that end before handing the veth over (see `Daemon::remove_port`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use std::sync::mpsc::{channel, Sender};

use super::ports::delete_veth;
use crate::netlink::Netlink;

enum Job {
    Delete(String),
    /// Answered once every deletion queued before it is done.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The thread deleting veths, in the order they were handed over.
pub struct Reaper {
    jobs: Option<Sender<Job>>,
    pending: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Reaper {
    /// Starts the thread with `nl`, a connection of its own in the daemon's netns.
    pub fn start(nl: Netlink) -> std::io::Result<Reaper> {
        let (tx, rx) = channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        let thread = std::thread::Builder::new()
            .name("mvdp-reaper".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Delete(ifname) => {
                            delete_veth(&nl, &ifname);
                            left.fetch_sub(1, Ordering::Relaxed);
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(Reaper {
            jobs: Some(tx),
            pending,
            thread: Some(thread),
        })
    }

    /// Queues the deletion of the veth whose end in the daemon's netns is `ifname`.
    pub fn delete(&self, ifname: String) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Some(Err(e)) = self.jobs.as_ref().map(|j| j.send(Job::Delete(ifname))) {
            // The thread is gone (it never exits while `jobs` is open): nothing will delete it.
            self.pending.fetch_sub(1, Ordering::Relaxed);
            if let Job::Delete(name) = e.0 {
                tracing::error!(ifname = name, "veth reaper is gone; the veth is left");
            }
        }
    }

    /// Veths handed over and not deleted yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Waits until every veth handed over so far is deleted.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if let Some(jobs) = &self.jobs {
            if jobs.send(Job::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }
}

impl Drop for Reaper {
    /// Finishes the queued deletions first: a daemon that stops leaves no removed port's veth.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
