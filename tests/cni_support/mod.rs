//! Running the `mvdp` binary as a CNI plugin against a [`DaemonLab`]: the environment and stdin a
//! runtime sends, the CNI result or error back; what a container namespace holds, judged with `ip`.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};

use crate::common::{DaemonLab, BIN};

/// Where Debian's containernetworking-plugins live (host-local, static, macvlan).
pub const CNI_PATH: &str = "/usr/lib/cni";

/// Every CNI version mvdp speaks.
pub const VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// One plugin run.
#[derive(Debug)]
pub struct Call {
    pub ok: bool,
    /// stdout as JSON (`Null` when empty).
    pub out: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Call {
    /// The CNI error code (panics on success).
    pub fn code(&self) -> u64 {
        assert!(!self.ok, "expected a failure, got {}", self.stdout);
        self.out["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code in {:?} / {}", self.stdout, self.stderr))
    }
}

/// The environment of one invocation.
#[derive(Clone, Debug)]
pub struct Inv {
    pub command: String,
    pub container_id: String,
    /// A netns name (under /run/netns) or a path; empty: CNI_NETNS not set.
    pub netns: String,
    pub ifname: String,
    pub args: Option<String>,
    pub path: String,
    /// Variables to leave out entirely.
    pub unset: Vec<&'static str>,
}

impl Inv {
    pub fn new(command: &str, container_id: &str, netns: &str) -> Inv {
        Inv {
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: None,
            path: CNI_PATH.into(),
            unset: vec![],
        }
    }
    pub fn cmd(&self, command: &str) -> Inv {
        Inv {
            command: command.into(),
            ..self.clone()
        }
    }
    pub fn args(mut self, a: &str) -> Inv {
        self.args = Some(a.into());
        self
    }
    pub fn ifname(mut self, i: &str) -> Inv {
        self.ifname = i.into();
        self
    }
    pub fn without(mut self, var: &'static str) -> Inv {
        self.unset.push(var);
        self
    }
}

/// Runs `plugin` (default: the mvdp binary) in the lab's host netns, as a runtime would.
pub fn run_plugin(d: &DaemonLab, plugin: &str, inv: &Inv, stdin: &[u8]) -> Call {
    let mut cmd = d.lab.host().command(plugin);
    let netns = if inv.netns.contains('/') || inv.netns.is_empty() {
        inv.netns.clone()
    } else {
        format!("/run/netns/{}", inv.netns)
    };
    cmd.env_remove("MVDP_SOCKET")
        .env("CNI_COMMAND", &inv.command)
        .env("CNI_CONTAINERID", &inv.container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", &inv.ifname)
        .env("CNI_PATH", &inv.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(a) = &inv.args {
        cmd.env("CNI_ARGS", a);
    }
    for v in &inv.unset {
        cmd.env_remove(v);
    }
    let mut child = cmd.spawn().expect("running the plugin");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Call {
        ok: out.status.success(),
        out: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the mvdp plugin with `conf` on stdin.
pub fn mvdp(d: &DaemonLab, inv: &Inv, conf: &Value) -> Call {
    run_plugin(d, BIN, inv, conf.to_string().as_bytes())
}

/// Like [`mvdp`], and it must succeed.
pub fn mvdp_ok(d: &DaemonLab, inv: &Inv, conf: &Value) -> Value {
    let c = mvdp(d, inv, conf);
    assert!(
        c.ok,
        "CNI {} {}: {}\n{}\ndaemon log:\n{}",
        inv.command,
        conf,
        c.stdout,
        c.stderr,
        d.log()
    );
    c.out
}

/// An mvdp network configuration on the lab's parent, talking to the lab's daemon; `extra`'s keys
/// are added (a `null` removes one).
pub fn conf(d: &DaemonLab, version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "cninet",
        "type": "mvdp",
        "master": "eth1",
        "socket": d.socket,
    });
    for (k, v) in extra.as_object().expect("an object") {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// host-local IPAM on the lab's subnet with a private data dir; gateway = the external host.
pub fn host_local(dir: &Path) -> Value {
    json!({
        "type": "host-local",
        "subnet": "198.18.0.0/24",
        "rangeStart": "198.18.0.100",
        "rangeEnd": "198.18.0.199",
        "gateway": "198.18.0.254",
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": dir,
    })
}

/// The addresses host-local has handed out from `dir` for network `name`.
pub fn allocations(dir: &Path, name: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(name))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `ip -j -n NS addr show dev IF` (None when the interface is absent).
pub fn iface(ns: &str, ifname: &str) -> Option<Value> {
    let o = std::process::Command::new("ip")
        .args(["-j", "-n", ns, "addr", "show", "dev", ifname])
        .output()
        .unwrap();
    if !o.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v.get(0).cloned()
}

/// The IPv4 addresses (CIDR) of an `iface` answer.
pub fn v4_addrs(i: &Value) -> Vec<String> {
    i["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// The container's IPv4 routes as `dst via gw` strings (sorted).
pub fn routes(ns: &str) -> Vec<String> {
    let o = std::process::Command::new("ip")
        .args(["-j", "-4", "-n", ns, "route", "show"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let mut r: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} via {} dev {}",
                r["dst"].as_str().unwrap_or(""),
                r["gateway"].as_str().unwrap_or("-"),
                r["dev"].as_str().unwrap_or("")
            )
        })
        .collect();
    r.sort();
    r
}

/// The daemon's ports (`mvdp port ls --json`).
pub fn ports(d: &DaemonLab) -> Vec<Value> {
    d.json(&["port", "ls", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A private directory for one test's files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mvdp-cni-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
