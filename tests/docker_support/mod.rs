//! A private containerd + dockerd (Debian's docker.io 20.10) inside a lab host's netns, driven with
//! `/usr/bin/docker` (see ../shared/RUNTIMES.md for why each step is needed). The runtime script
//! mounts cgroup v1 controllers, a private /run, /var/lib and /etc/docker (so the plugin spec file
//! and dockerd's run files vanish with it), starts containerd, then keeps dockerd running until
//! told to stop: killing dockerd is a dockerd restart. Dropping a [`Dockerd`] removes its
//! containers and networks, stops both daemons and removes the cgroup dirs they made.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use crate::common::{eventually, DaemonLab};
pub use mvdp_lab::testing::runtimes::{
    busybox_rootfs, require_binaries as require, write_containerd_config, RUNTIME_PRELUDE,
};

/// Debian's docker.io client (a newer client may come first on PATH).
pub const DOCKER: &str = "/usr/bin/docker";

/// A registry-free image, as a tar.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    busybox_rootfs(dir).1
}

const RUNTIME: &str = r#"mount -t tmpfs etcdocker /etc/docker
mkdir -p /etc/docker/plugins
if [ -n "$PLUGIN" ] && [ "$VIA" = spec ]; then
  echo "unix://$PLUGIN" > /etc/docker/plugins/mvdp.spec
elif [ -n "$PLUGIN" ]; then
  # dockerd's compiled-in plugin directory, private to this mount namespace.
  mkdir -p /run/docker/plugins
  mount --bind "$(dirname "$PLUGIN")" /run/docker/plugins
fi
containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
trap 'kill $CPID 2>/dev/null; wait $CPID 2>/dev/null' EXIT
i=0; until [ -S "$T/ctrd/c.sock" ]; do i=$((i+1)); [ $i -lt 100 ] || { echo "containerd did not start"; exit 1; }; sleep 0.1; done
while [ ! -e "$T/stop" ]; do
  dockerd --config-file "$T/daemon.json" --data-root "$T/data" --exec-root "$T/exec" \
    --pidfile "$T/dockerd.pid" -H "unix://$T/docker.sock" --containerd "$T/ctrd/c.sock" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false --storage-driver overlay2 --cgroup-parent "$CGP" >>"$T/dockerd.log" 2>&1 &
  echo $! > "$T/dockerd.shpid"
  wait $! || true
done
"#;

/// How dockerd finds the mvdp driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `/etc/docker/plugins/mvdp.spec` naming the socket.
    Spec,
    /// The socket's directory mounted on `/run/docker/plugins` (the default path).
    RunDir,
}

pub struct Dockerd {
    pub dir: PathBuf,
    child: Option<Child>,
    /// Cgroup dirs dockerd/containerd made in the machine's v1 hierarchies.
    cgroups: Vec<String>,
}

impl Dockerd {
    /// Starts containerd + dockerd in host `host`'s netns, the `plugin` socket found as driver
    /// `mvdp` the way `Via` says (None: no mvdp driver), and imports the busybox image as `bb`.
    pub fn start(d: &DaemonLab, host: u32, tag: &str, plugin: Option<(&Path, Via)>) -> Dockerd {
        let dir = d.dir.join(format!("docker-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_containerd_config(&dir);
        std::fs::write(
            dir.join("daemon.json"),
            serde_json::json!({"deprecated-key-path": dir.join("key.json")}).to_string(),
        )
        .unwrap();
        std::fs::write(
            dir.join("runtime.sh"),
            format!("{RUNTIME_PRELUDE}{RUNTIME}"),
        )
        .unwrap();
        let cgp = format!("{}-{tag}", d.lab.prefix());
        let child = d
            .lab
            .host_n(host)
            .ns
            .command("sh")
            .arg(dir.join("runtime.sh"))
            .env("T", &dir)
            .env("CGP", &cgp)
            .env(
                "PLUGIN",
                plugin
                    .map(|p| p.0.display().to_string())
                    .unwrap_or_default(),
            )
            .env(
                "VIA",
                if plugin.is_some_and(|p| p.1 == Via::Spec) {
                    "spec"
                } else {
                    "run"
                },
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.join("runtime.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("runtime.err")).unwrap())
            .spawn()
            .expect("starting the runtime script");
        let dk = Dockerd {
            dir,
            child: Some(child),
            cgroups: vec![cgp],
        };
        dk.wait_up();
        let tar = busybox_tar(&dk.dir);
        dk.ok(&["import", &tar.display().to_string(), "bb"]);
        dk
    }

    fn wait_up(&self) {
        let up = eventually(30, || self.docker(&["version"]).status.success());
        assert!(up, "dockerd did not answer:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        let r = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- runtime ---\n{}{}\n--- dockerd (tail) ---\n{}",
            r("runtime.log"),
            r("runtime.err"),
            r("dockerd.log")
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("cli"))
            .output()
            .expect("running docker")
    }

    /// `docker ARGS` must succeed; its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// `docker ARGS` must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(!o.status.success(), "docker {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// Whether a throwaway container on `net` can ping `ip`.
    pub fn pings(&self, net: &str, ip: &str) -> bool {
        self.docker(&[
            "run",
            "--rm",
            "--network",
            net,
            "bb",
            "ping",
            "-c",
            "2",
            "-W",
            "2",
            ip,
        ])
        .status
        .success()
    }

    /// Whether container `c` (running) can ping `ip`.
    pub fn exec_pings(&self, c: &str, ip: &str) -> bool {
        self.docker(&["exec", c, "ping", "-c", "2", "-W", "2", ip])
            .status
            .success()
    }

    /// Container `c`'s address on `net`.
    pub fn ip(&self, c: &str, net: &str) -> String {
        self.ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            c,
        ])
    }

    fn dockerd_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("dockerd.shpid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops dockerd (SIGTERM); the runtime script starts it again; waits until it answers.
    pub fn restart(&self) {
        let pid = self.dockerd_pid().expect("dockerd's pid");
        let _ = std::fs::remove_file(self.dir.join("docker.sock"));
        unsafe_kill(pid, nix::sys::signal::Signal::SIGTERM);
        let gone = eventually(30, || self.dockerd_pid() != Some(pid));
        assert!(gone, "dockerd did not restart:\n{}", self.logs());
        self.wait_up();
    }
}

fn unsafe_kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = self.docker(&["network", "prune", "-f"]);
        let _ = std::fs::write(self.dir.join("stop"), "");
        if let Some(pid) = self.dockerd_pid() {
            unsafe_kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if let Some(mut c) = self.child.take() {
            let done = eventually(20, || c.try_wait().ok().flatten().is_some());
            if !done {
                if let Some(pid) = self.dockerd_pid() {
                    unsafe_kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        for c in [
            "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
        ] {
            for n in &self.cgroups {
                let p = Path::new("/sys/fs/cgroup").join(c).join(n);
                if p.exists() {
                    let _ = Command::new("find")
                        .arg(&p)
                        .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                        .status();
                }
            }
        }
        // Overlay mounts die with the runtime's mount namespace; then the files can go.
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The interfaces of a lab netns whose name starts with `prefix`.
pub fn links_with(ns: &str, prefix: &str) -> Vec<String> {
    crate::common::links(ns)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}
