//! A lab with `mvdp daemon` running inside its host netns (socket and state under a temp dir of the
//! lab's own), and helpers to run the CLI against it. Dropping it stops the daemon, then the lab.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mvdp_lab::Lab;

pub const BIN: &str = env!("CARGO_BIN_EXE_mvdp");
/// How long a daemon gets to exit after a signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub struct DaemonLab {
    pub lab: Lab,
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    /// Daemons on the lab's other hosts: (host number, socket, process).
    others: Vec<(u32, PathBuf, Child)>,
}

impl DaemonLab {
    pub fn start(prefix: &str, containers: u32, hairpin: bool) -> DaemonLab {
        Self::start_hosts(prefix, containers, hairpin, 1)
    }

    /// A lab with `hosts` hosts; the daemon runs on the first ([`DaemonLab::start_on_host`] adds more).
    pub fn start_hosts(prefix: &str, containers: u32, hairpin: bool, hosts: u32) -> DaemonLab {
        let lab = Lab::builder(prefix)
            .containers(containers)
            .hairpin(hairpin)
            .hosts(hosts)
            .build()
            .expect("building the lab");
        let dir = std::env::temp_dir().join(format!("mvdp-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = DaemonLab {
            lab,
            socket: dir.join("run/mvdp.sock"),
            dir,
            child: None,
            others: Vec::new(),
        };
        d.spawn();
        d
    }

    fn daemon_command(&self, host: u32, socket: &std::path::Path) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("daemon{host}.log")))
            .unwrap();
        let mut cmd = self.lab.host_n(host).ns.command(BIN);
        cmd.arg("daemon")
            .arg("--socket")
            .arg(socket)
            .arg("--state-dir")
            .arg(self.dir.join(format!("state{host}")))
            .env("MVDP_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    /// Starts a second daemon in host `n`'s netns (n >= 2) and waits until it answers.
    pub fn start_on_host(&mut self, n: u32) {
        let socket = self.dir.join(format!("run/h{n}.sock"));
        let child = self
            .daemon_command(n, &socket)
            .spawn()
            .expect("starting mvdp daemon");
        self.others.push((n, socket, child));
        let end = Instant::now() + Duration::from_secs(15);
        while !self.mvdp_on(n, &["network", "ls"]).status.success() {
            assert!(Instant::now() < end, "daemon on host {n} not answering");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `mvdp ARGS` against the daemon of host `n` (1 = the first daemon).
    pub fn mvdp_on(&self, n: u32, args: &[&str]) -> Output {
        let socket = if n == 1 {
            &self.socket
        } else {
            &self
                .others
                .iter()
                .find(|o| o.0 == n)
                .expect("daemon on that host")
                .1
        };
        Command::new(BIN)
            .args(args)
            .env("MVDP_SOCKET", socket)
            .output()
            .expect("running mvdp")
    }

    /// `mvdp ARGS` on host `n`'s daemon must succeed; its stdout.
    pub fn ok_on(&self, n: u32, args: &[&str]) -> String {
        let o = self.mvdp_on(n, args);
        assert!(
            o.status.success(),
            "mvdp (host {n}) {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Starts the daemon (again) and waits until it answers.
    pub fn spawn(&mut self) {
        let child = self
            .daemon_command(1, &self.socket.clone())
            .spawn()
            .expect("starting mvdp daemon");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(15);
        while !self.mvdp(&["network", "ls"]).status.success() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mvdp daemon exited ({st}):\n{}", self.log());
            }
            assert!(
                Instant::now() < end,
                "daemon not answering:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon1.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// Sends `sig` and waits (up to 10 s, then SIGKILL) for the daemon to exit.
    pub fn stop(&mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        mvdp_lab::process::stop_child(&mut c, sig, STOP_GRACE)
    }

    /// `mvdp ARGS` against this daemon (through MVDP_SOCKET).
    pub fn mvdp(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("MVDP_SOCKET", &self.socket)
            .output()
            .expect("running mvdp")
    }

    /// `mvdp ARGS` must succeed; its stdout.
    /// `mvdp network create lan --parent eth1 --subnet 198.18.0.0/24 --ip-range RANGE` (bridge mode).
    pub fn create_lan(&self, ip_range: &str) -> String {
        self.ok(&[
            "network",
            "create",
            "lan",
            "--parent",
            "eth1",
            "--subnet",
            "198.18.0.0/24",
            "--ip-range",
            ip_range,
        ])
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.mvdp(args);
        assert!(
            o.status.success(),
            "mvdp {args:?} failed: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `mvdp ARGS` must fail with a message containing `want`; its stderr.
    pub fn refused(&self, args: &[&str], want: &str) -> String {
        let o = self.mvdp(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "mvdp {args:?} succeeded");
        assert!(err.contains(want), "mvdp {args:?}: {err:?} lacks {want:?}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }

    pub fn host(&self) -> String {
        self.lab.host().name().to_string()
    }

    pub fn c(&self, n: u32) -> String {
        self.lab.container(n).ns.name().to_string()
    }
}

impl Drop for DaemonLab {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(nix::sys::signal::Signal::SIGTERM);
        }
        for (_, _, c) in &mut self.others {
            mvdp_lab::process::stop_child(c, nix::sys::signal::Signal::SIGTERM, STOP_GRACE);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Interface names in netns `ns`.
pub fn links(ns: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["-n", ns, "-br", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// One ping from `ns` to `ip`, up to `tries` times (the first may wait for ARP).
pub fn ping(ns: &str, ip: &str, tries: u32) -> bool {
    (0..tries).any(|_| {
        Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c1", "-W1", ip])
            .output()
            .unwrap()
            .status
            .success()
    })
}
