//! Named network namespaces, iproute2-compatible: `/run/netns/NAME` is a bind mount of a netns file, and
//! `/run/netns` itself is a shared mount, so `ip netns exec NAME ...` and `ip -n NAME ...` work on them.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::names::validate_netns_name;

/// Where iproute2 keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Serialises the "make /run/netns a shared mount" dance inside this process (iproute2 has the same race
/// between processes; it is harmless there too, at worst one more stacked bind mount).
static RUN_DIR_LOCK: Mutex<()> = Mutex::new(());

/// A named network namespace. Holds an open fd to it, so the namespace stays alive while this value lives
/// even if someone else deletes the name. Cloning shares the fd.
#[derive(Debug, Clone)]
pub struct NetNs {
    name: String,
    fd: Arc<OwnedFd>,
}

impl NetNs {
    /// Creates `/run/netns/NAME` holding a fresh network namespace (with `lo` down, as the kernel makes it).
    /// Fails with EEXIST if the name is taken. The calling thread's namespace is not changed: the new
    /// namespace is made by `unshare` on a short-lived dedicated thread.
    pub fn create(name: &str) -> Result<NetNs> {
        validate_netns_name(name)?;
        let path = Self::path_of(name);
        let op = || format!("creating network namespace {name}");
        prepare_run_dir().map_err(|e| Error::io(op(), e))?;
        // O_EXCL: refuse to reuse someone else's name.
        let file = open(
            &path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(op(), io::Error::from(e)))?;
        drop(file);
        let mounted = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<()> {
                // CLONE_NEWNET only affects this thread; it exits right after.
                unshare(CloneFlags::CLONE_NEWNET)?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
        });
        if let Err(e) = mounted {
            let _ = fs::remove_file(&path);
            return Err(Error::io(op(), e));
        }
        Self::open(name).inspect_err(|_| {
            let _ = Self::remove_path(&path);
        })
    }

    /// Opens an existing named namespace.
    pub fn open(name: &str) -> Result<NetNs> {
        validate_netns_name(name)?;
        let path = Self::path_of(name);
        let fd = match open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(Error::NetnsNotFound(name.to_string())),
            Err(e) => {
                return Err(Error::io(
                    format!("opening network namespace {name}"),
                    io::Error::from(e),
                ))
            }
        };
        // An empty file left by a crash is not a namespace: setns would fail later with a confusing EINVAL.
        let st = nix::sys::statfs::fstatfs(&fd).map_err(|e| {
            Error::io(
                format!("opening network namespace {name}"),
                io::Error::from(e),
            )
        })?;
        if st.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
            return Err(Error::io(
                format!("opening network namespace {name}"),
                io::Error::other(format!(
                    "{} is not a mounted namespace (stale file?)",
                    path.display()
                )),
            ));
        }
        Ok(NetNs {
            name: name.to_string(),
            fd: Arc::new(fd),
        })
    }

    /// Whether `/run/netns/NAME` exists.
    pub fn exists(name: &str) -> bool {
        validate_netns_name(name).is_ok() && Self::path_of(name).exists()
    }

    /// Names of all namespaces in /run/netns, sorted.
    pub fn list() -> Result<Vec<String>> {
        let mut out = Vec::new();
        let dir = match fs::read_dir(NETNS_RUN_DIR) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(format!("listing {NETNS_RUN_DIR}"), e)),
        };
        for entry in dir {
            let entry = entry.map_err(|e| Error::io(format!("listing {NETNS_RUN_DIR}"), e))?;
            if let Some(n) = entry.file_name().to_str() {
                out.push(n.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Names of the namespaces starting with `prefix`, sorted.
    pub fn list_prefix(prefix: &str) -> Result<Vec<String>> {
        Ok(Self::list()?
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .collect())
    }

    /// Removes the name (unmount + unlink). The namespace itself dies when its last user (open fd, process,
    /// socket) goes away; its interfaces go with it (a veth's peer in another namespace too).
    pub fn delete_by_name(name: &str) -> Result<()> {
        validate_netns_name(name)?;
        let path = Self::path_of(name);
        if !path.exists() {
            return Err(Error::NetnsNotFound(name.to_string()));
        }
        Self::remove_path(&path)
            .map_err(|e| Error::io(format!("deleting network namespace {name}"), e))
    }

    /// Removes this namespace's name; see [`NetNs::delete_by_name`]. The namespace lives on until this value
    /// (and its clones, and anything created inside) is dropped.
    pub fn delete(&self) -> Result<()> {
        Self::delete_by_name(&self.name)
    }

    fn remove_path(path: &Path) -> io::Result<()> {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {} // EINVAL: not mounted (stale file)
            Err(e) => return Err(e.into()),
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        Self::path_of(&self.name)
    }

    fn path_of(name: &str) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(name)
    }

    /// The namespace fd (valid while `self` lives), e.g. for IFLA_NET_NS_FD.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Runs `f` on a new thread that has entered this namespace, waits for it and returns its result. Sockets,
    /// netlink connections, XDP links and AF_XDP sockets created inside `f` stay bound to this namespace and
    /// can be used from any thread afterwards. A panic in `f` is propagated.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        run_in(self.fd(), &self.name, f)
    }

    /// A `Command` that runs `program` inside this namespace: `ip netns exec NAME program`, which
    /// enters the namespace, gives the child a private mount namespace and a /sys of this netns
    /// (tools such as ethtool read /sys/class/net). iproute2 does this instead of a pre-exec hook of
    /// ours so that no `unsafe` is needed outside the fast path and the BPF loader.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

/// Runs `f` on a new thread that has entered the network namespace behind `fd` (called `name` in
/// errors), waits for it and returns its result; see [`NetNs::run`]. For namespaces that are not named
/// ones, such as a container's `/proc/PID/ns/net`. A panic in `f` is propagated.
pub fn run_in<F, R>(fd: BorrowedFd<'_>, name: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    std::thread::scope(|s| {
        let handle = s.spawn(|| -> Result<R> {
            setns(fd, CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::io(
                    format!("entering network namespace {name}"),
                    io::Error::from(e),
                )
            })?;
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// mkdir /run/netns and make it a shared mount point, as iproute2's `netns_add` does, so that namespace
/// mounts propagate to every mount namespace (e.g. those of `ip netns exec` children).
fn prepare_run_dir() -> io::Result<()> {
    let _guard = RUN_DIR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match fs::create_dir(NETNS_RUN_DIR) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let shared = |dir: &str| {
        mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared(NETNS_RUN_DIR) {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then make it shared.
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared(NETNS_RUN_DIR)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// True when the process runs as root (euid 0). Namespace and netlink changes need it.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
