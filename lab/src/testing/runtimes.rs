//! What the tests that run real container runtimes (podman, containerd, dockerd) share: the
//! binaries they need, a registry-free busybox image, and the start of every runtime script.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails (not skips) when a binary is missing: CI installs them (scripts/deps.sh).
pub fn require_binaries(bins: &[&str]) {
    for b in bins {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
            .iter()
            .any(|d| Path::new(d).join(b).is_file());
        assert!(found, "{b} is not installed: run scripts/deps.sh");
    }
}

/// A registry-free image under `dir`: /bin/busybox (static) and its applets, an /etc/passwd and
/// /etc/group; the directory and a tar of it.
pub fn busybox_rootfs(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for applet in ["sh", "ping", "ip", "sleep", "cat", "true", "ls", "echo"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the busybox rootfs");
    (root, tar)
}

/// How every runtime script starts (inside `ip netns exec`, in a mount namespace of its own):
/// cgroup v1 controllers mounted again (the netns entry remounted /sys; crun refuses the cgroup2
/// "hybrid" mount), and private /run and /var/lib so the runtime's state files there vanish with
/// the namespace.
pub const RUNTIME_PRELUDE: &str = r#"set -eu
mount -t tmpfs cgroup_root /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t tmpfs run /run
mount -t tmpfs varlib /var/lib
"#;

/// Writes `dir/containerd.toml`: a private containerd with its root, state and sockets under
/// `dir/ctrd` (socket `dir/ctrd/c.sock`), without the plugins that need a host of its own (`opt`
/// writes /opt/containerd, `cri` a Kubernetes node).
pub fn write_containerd_config(dir: &Path) {
    std::fs::write(
        dir.join("containerd.toml"),
        format!(
            r#"version = 2
root = "{t}/ctrd/root"
state = "{t}/ctrd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.grpc.v1.cri"]
[grpc]
  address = "{t}/ctrd/c.sock"
[ttrpc]
  address = "{t}/ctrd/c.sock.ttrpc"
"#,
            t = dir.display()
        ),
    )
    .expect("writing containerd.toml");
}
