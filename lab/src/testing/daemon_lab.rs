//! A lab with `mvdp daemon` running inside its host netns (socket, state and log under a temp dir
//! of the lab's own, one subdirectory per host), started the way every lab daemon is
//! ([`spawn_daemon`]), and helpers to run the CLI against it. Dropping it stops the daemons, then
//! the lab.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};

use nix::sys::signal::Signal;

use crate::lab::daemon::{spawn_daemon, stop_daemon_child, DaemonPaths};
use crate::Lab;

/// A daemon of the lab: its host, files and process.
struct HostDaemon {
    host: u32,
    paths: DaemonPaths,
    child: Option<Child>,
}

pub struct DaemonLab {
    pub lab: Lab,
    /// The lab's own temp dir (`mvdp-<prefix>`), removed on drop.
    pub dir: PathBuf,
    /// The first host's daemon's control socket.
    pub socket: PathBuf,
    /// The `mvdp` binary (`env!("CARGO_BIN_EXE_mvdp")` in the root package's tests).
    bin: PathBuf,
    /// The first host's daemon first.
    daemons: Vec<HostDaemon>,
    /// The daemons serve Docker's remote driver protocol.
    docker: bool,
}

impl DaemonLab {
    /// A lab with one host and `containers` containers, `bin daemon` running in the host.
    pub fn start(bin: impl AsRef<Path>, prefix: &str, containers: u32, hairpin: bool) -> DaemonLab {
        Self::start_hosts(bin, prefix, containers, hairpin, 1)
    }

    /// A lab with `hosts` hosts; the daemon runs on the first ([`DaemonLab::start_on_host`] adds more).
    pub fn start_hosts(
        bin: impl AsRef<Path>,
        prefix: &str,
        containers: u32,
        hairpin: bool,
        hosts: u32,
    ) -> DaemonLab {
        Self::start_with(bin, prefix, containers, hairpin, hosts, false)
    }

    /// Like [`DaemonLab::start_hosts`]; with `docker`, every daemon also serves Docker's remote
    /// driver protocol on [`DaemonLab::docker_plugin`].
    pub fn start_with(
        bin: impl AsRef<Path>,
        prefix: &str,
        containers: u32,
        hairpin: bool,
        hosts: u32,
        docker: bool,
    ) -> DaemonLab {
        let lab = Lab::builder(prefix)
            .containers(containers)
            .hairpin(hairpin)
            .hosts(hosts)
            .build()
            .expect("building the lab");
        let dir = std::env::temp_dir().join(format!("mvdp-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        let paths = DaemonPaths::new(dir.join("h1"));
        let mut d = DaemonLab {
            docker,
            lab,
            socket: paths.socket(),
            dir,
            bin: bin.as_ref().to_path_buf(),
            daemons: vec![HostDaemon {
                host: 1,
                paths,
                child: None,
            }],
        };
        d.spawn();
        d
    }

    fn start_daemon(&mut self, i: usize) -> Child {
        if self.docker {
            let p = &mut self.daemons[i].paths;
            p.args = vec![format!("--docker-plugin={}", p.docker_plugin().display())];
        }
        let hd = &self.daemons[i];
        spawn_daemon(&self.bin, &self.lab.host_n(hd.host).ns, &hd.paths)
            .unwrap_or_else(|e| panic!("starting mvdp daemon on host {}: {e:#}", hd.host))
    }

    /// Starts a second daemon in host `n`'s netns (n >= 2) and waits until it answers.
    pub fn start_on_host(&mut self, n: u32) {
        self.daemons.push(HostDaemon {
            host: n,
            paths: DaemonPaths::new(self.dir.join(format!("h{n}"))),
            child: None,
        });
        let child = self.start_daemon(self.daemons.len() - 1);
        self.daemons.last_mut().unwrap().child = Some(child);
    }

    /// Starts the first host's daemon (again) and waits until it answers.
    pub fn spawn(&mut self) {
        let child = self.start_daemon(0);
        self.daemons[0].child = Some(child);
    }

    fn on(&self, n: u32) -> &HostDaemon {
        self.daemons
            .iter()
            .find(|d| d.host == n)
            .expect("daemon on that host")
    }

    /// `mvdp ARGS` against the daemon of host `n` (1 = the first daemon).
    pub fn mvdp_on(&self, n: u32, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("MVDP_SOCKET", self.on(n).paths.socket())
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

    /// Where host `n`'s daemon serves Docker's remote driver protocol (with `docker`).
    pub fn docker_plugin(&self, n: u32) -> PathBuf {
        self.on(n).paths.docker_plugin()
    }

    /// The first daemon's log so far.
    pub fn log(&self) -> String {
        self.daemons[0].paths.read_log()
    }

    pub fn pid(&self) -> i32 {
        self.daemons[0].child.as_ref().expect("daemon running").id() as i32
    }

    /// Sends `sig` to the first daemon and waits (up to 10 s, then SIGKILL) for it to exit.
    pub fn stop(&mut self, sig: Signal) -> ExitStatus {
        let mut c = self.daemons[0].child.take().expect("daemon running");
        stop_daemon_child(&mut c, sig)
    }

    /// `mvdp ARGS` against the first daemon (through MVDP_SOCKET).
    pub fn mvdp(&self, args: &[&str]) -> Output {
        self.mvdp_on(1, args)
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

    /// `mvdp port add NETWORK --netns <container n> --ip IP` must succeed; the port's MAC.
    pub fn add_port(&self, network: &str, n: u32, ip: &str) -> String {
        let v = self.json(&[
            "port",
            "add",
            network,
            "--netns",
            &self.c(n),
            "--ip",
            ip,
            "--json",
        ]);
        v["mac"].as_str().expect("the port's MAC").to_string()
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

    /// The first host's netns name.
    pub fn host(&self) -> String {
        self.lab.host().name().to_string()
    }

    /// Container `n`'s netns name.
    pub fn c(&self, n: u32) -> String {
        self.lab.container(n).ns.name().to_string()
    }
}

impl Drop for DaemonLab {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            if let Some(mut c) = d.child.take() {
                stop_daemon_child(&mut c, Signal::SIGTERM);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
