//! A lab with `mvdp daemon` running inside its host netns (socket and state under a temp dir of the
//! lab's own), and helpers to run the CLI against it. Dropping it stops the daemon, then the lab.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mvdp_control::Lab;

pub const BIN: &str = env!("CARGO_BIN_EXE_mvdp");

pub struct DaemonLab {
    pub lab: Lab,
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl DaemonLab {
    pub fn start(prefix: &str, containers: u32, hairpin: bool) -> DaemonLab {
        let lab = Lab::builder(prefix)
            .containers(containers)
            .hairpin(hairpin)
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
        };
        d.spawn();
        d
    }

    /// Starts the daemon (again) and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let child = self
            .lab
            .host()
            .command(BIN)
            .arg("daemon")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .env("MVDP_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
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
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// Sends `sig` and waits for the daemon to exit.
    pub fn stop(&mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > end {
                let _ = c.kill();
                return c.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
