//! The process-global registries of live labs and of daemons started for them, and the signal
//! handler that removes both on Ctrl-C.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use mvdp_control::error::{Error, Result};
use mvdp_control::netns::NetNs;

static LIVE: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static HANDLER: Once = Once::new();

/// A new id for a lab's entry in the registry.
pub(super) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn live() -> MutexGuard<'static, BTreeMap<u64, Vec<String>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes the namespaces of every lab still alive in this process. Returns the names removed. Called by
/// the signal handler; safe to call from anywhere (labs dropped later find their namespaces gone).
pub fn destroy_all_live() -> Vec<String> {
    delete_registered(&mut live())
}

fn delete_registered(labs: &mut BTreeMap<u64, Vec<String>>) -> Vec<String> {
    let mut removed = Vec::new();
    for name in std::mem::take(labs).into_values().flatten() {
        if NetNs::delete_by_name(&name).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Daemons started for a lab being built (`mvdp lab up --backend mvdp`) that run in their own process
/// group, so a Ctrl-C does not reach them: the signal handler stops them before it removes the lab.
static LIVE_DAEMONS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live_daemons() -> MutexGuard<'static, Vec<u32>> {
    LIVE_DAEMONS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Has the signal handler of [`install_signal_handler`] stop process `pid` (a child of this process).
pub fn stop_daemon_on_interrupt(pid: u32) {
    live_daemons().push(pid);
}

/// Undoes [`stop_daemon_on_interrupt`] (the daemon was stopped, or is meant to outlive the process).
pub fn forget_daemon_on_interrupt(pid: u32) {
    live_daemons().retain(|p| *p != pid);
}

/// Directories of daemons started for a lab (OVS's run/db/log directories) that the signal handler
/// removes after stopping the daemons.
static LIVE_DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

fn live_dirs() -> MutexGuard<'static, Vec<std::path::PathBuf>> {
    LIVE_DIRS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Has the signal handler of [`install_signal_handler`] remove directory `dir` (after the daemons).
pub fn remove_dir_on_interrupt(dir: &std::path::Path) {
    live_dirs().push(dir.to_path_buf());
}

/// Undoes [`remove_dir_on_interrupt`].
pub fn forget_dir_on_interrupt(dir: &std::path::Path) {
    live_dirs().retain(|d| d != dir);
}

/// How long daemons get to exit on Ctrl-C before they are killed.
const INTERRUPT_STOP: std::time::Duration = std::time::Duration::from_secs(2);

/// Installs a SIGINT/SIGTERM/SIGHUP handler (once per process; later calls are no-ops) that removes every
/// live lab's namespaces and exits with status 130. Fails if another `ctrlc` handler is already installed.
pub fn install_signal_handler() -> Result<()> {
    let mut res = Ok(());
    HANDLER.call_once(|| {
        res = ctrlc::set_handler(|| {
            // The registry stays locked until exit: a lab still being built blocks before it
            // registers (and so before it creates) another namespace, which would otherwise leak.
            let mut labs = live();
            crate::process::stop_pids(&std::mem::take(&mut *live_daemons()), INTERRUPT_STOP);
            for dir in std::mem::take(&mut *live_dirs()) {
                let _ = std::fs::remove_dir_all(dir);
            }
            let removed = delete_registered(&mut labs);
            if !removed.is_empty() {
                eprintln!(
                    "mvdp: interrupted; removed lab namespaces: {}",
                    removed.join(", ")
                );
            }
            std::process::exit(130);
        })
        .map_err(|e| {
            Error::io(
                "installing the SIGINT/SIGTERM handler",
                std::io::Error::other(e.to_string()),
            )
        });
    });
    res
}
