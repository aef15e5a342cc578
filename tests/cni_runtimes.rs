//! Real container runtimes attach containers to an mvdp network through the CNI plugin: podman 4.3
//! (CNI backend) and containerd's `ctr run --cni`, each run inside the lab's host netns in a mount
//! namespace of its own (see ../shared/RUNTIMES.md for why each step is needed). The image is a
//! busybox rootfs made here (no registry). Containers ping each other and the external host; when
//! a container goes the runtime calls DEL and its port is gone; nothing is left behind.

mod cni_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cni_support::*;
use common::*;
use mvdp_lab::testing::runtimes::{
    busybox_rootfs, require_binaries, write_containerd_config, RUNTIME_PRELUDE,
};
use serde_json::json;

/// A CNI bin dir holding `mvdp` (a link to the binary, as installed) and host-local.
fn cni_bin(dir: &Path) -> PathBuf {
    let bin = dir.join("cnibin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("mvdp")).unwrap();
    for p in ["host-local", "loopback"] {
        std::os::unix::fs::symlink(format!("{CNI_PATH}/{p}"), bin.join(p)).unwrap();
    }
    bin
}

fn conflist(d: &DaemonLab, dir: &Path, name: &str, version: &str) -> serde_json::Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [{
            "type": "mvdp",
            "master": "eth1",
            "socket": d.socket,
            "ipam": {
                "type": "host-local",
                "subnet": "198.18.0.0/24",
                "rangeStart": "198.18.0.120",
                "rangeEnd": "198.18.0.139",
                "gateway": "198.18.0.254",
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": dir.join("ipam"),
            },
        }],
    })
}

/// What every runtime script here adds to [`RUNTIME_PRELUDE`].
const PRELUDE_REST: &str = r#"ports() { "$MVDP" port ls --json | tr -d ' \n'; echo; }
"#;

/// Runs `script` with sh in the lab's host netns (a private mount namespace); its output.
fn run_script(
    d: &DaemonLab,
    dir: &Path,
    name: &str,
    script: &str,
    env: &[(&str, String)],
) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, format!("{RUNTIME_PRELUDE}{PRELUDE_REST}{script}")).unwrap();
    let mut cmd = d.lab.host().command("sh");
    cmd.arg(&path)
        .env("MVDP", BIN)
        .env("MVDP_SOCKET", &d.socket)
        .env("T", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let out = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out)
}

/// The cgroup directories a runtime made in the (machine-wide) v1 hierarchies.
fn remove_cgroups(names: &[&str]) {
    for c in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
    ] {
        for n in names {
            let p = Path::new("/sys/fs/cgroup").join(c).join(n);
            if p.exists() {
                let _ = Command::new("find")
                    .arg(&p)
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", ";"])
                    .status();
            }
        }
    }
}

/// Lines of the script's output starting with `key=`.
fn marked<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .collect()
}

#[test]
fn podman_attaches_containers_through_the_plugin() {
    if !is_root("podman_attaches_containers_through_the_plugin") {
        return;
    }
    require_binaries(&["podman", "crun", "conmon", "busybox"]);
    let d = DaemonLab::start(BIN, &unique_prefix("pdm"), 0, false);
    let tmp = TempDir::new(d.lab.prefix());
    let dir = tmp.path();
    busybox_rootfs(dir);
    let bin = cni_bin(dir);
    let net = format!("mvdp{}", d.lab.prefix());
    let netd = dir.join("net.d");
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::write(
        netd.join(format!("{net}.conflist")),
        conflist(&d, dir, &net, "0.4.0").to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{t}/podman-tmp"
volume_path = "{t}/volumes"
[network]
network_backend = "cni"
cni_plugin_dirs = ["{bin}"]
network_config_dir = "{netd}"
"#,
            t = dir.display(),
            bin = bin.display(),
            netd = netd.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{t}/graph\"\nrunroot = \"{t}/runroot\"\n",
            t = dir.display()
        ),
    )
    .unwrap();
    let script = r#"
P="podman --cgroup-manager cgroupfs"
# Whatever happens, no container (or its conmon) outlives the script.
trap '$P rm -f -a -t 0 >/dev/null 2>&1; $P rmi -af >/dev/null 2>&1' EXIT
$P import -q "$T/rootfs.tar" localhost/mvdpbb >/dev/null
$P run -d --name mvdp-a --network "$NET" localhost/mvdpbb sleep 120 >/dev/null
A=$($P inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" mvdp-a)
echo "a_ip=$A"
echo "ports_one=$(ports)"
$P run --rm --name mvdp-b --network "$NET" localhost/mvdpbb sh -c "ping -c 2 -W 2 $A && ping -c 2 -W 2 198.18.0.254" >/dev/null && echo "pings=ok"
echo "ports_after_b=$(ports)"
$P rm -f -t 0 mvdp-a >/dev/null
echo "ports_after_rm=$(ports)"
"#;
    let (ok, out) = run_script(
        &d,
        dir,
        "podman.sh",
        script,
        &[
            ("NET", net.clone()),
            (
                "CONTAINERS_CONF",
                dir.join("containers.conf").display().to_string(),
            ),
            (
                "CONTAINERS_STORAGE_CONF",
                dir.join("storage.conf").display().to_string(),
            ),
        ],
    );
    remove_cgroups(&["libpod_parent"]);
    assert!(ok, "podman script failed:\n{out}\ndaemon log:\n{}", d.log());
    let a_ip = marked(&out, "a_ip")[0];
    assert!(a_ip.starts_with("198.18.0.1"), "{out}");
    let one: serde_json::Value = serde_json::from_str(marked(&out, "ports_one")[0]).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(one[0]["network"], net.as_str());
    assert_eq!(
        one[0]["container_id"].as_str().unwrap().len(),
        64,
        "podman's container id: {out}"
    );
    assert_eq!(one[0]["ip"], format!("{a_ip}/24"));
    assert_eq!(marked(&out, "pings"), ["ok"], "{out}");
    assert_eq!(
        without_groups(marked(&out, "ports_after_b")[0]),
        without_groups(marked(&out, "ports_one")[0]),
        "b's DEL: {out}"
    );
    assert_eq!(
        marked(&out, "ports_after_rm"),
        ["[]"],
        "podman rm called DEL: {out}"
    );
    assert!(ports(&d).is_empty());
    assert!(
        allocations(dir, &net).is_empty(),
        "IPAM released: {:?}",
        allocations(dir, &net)
    );
}

#[test]
fn containerd_ctr_run_cni_attaches_containers_through_the_plugin() {
    if !is_root("containerd_ctr_run_cni_attaches_containers_through_the_plugin") {
        return;
    }
    require_binaries(&["containerd", "ctr", "runc", "busybox"]);
    let d = DaemonLab::start(BIN, &unique_prefix("ctr"), 0, false);
    let tmp = TempDir::new(d.lab.prefix());
    let dir = tmp.path();
    let (rootfs, _) = busybox_rootfs(dir);
    for c in ["a", "b"] {
        let st = Command::new("cp")
            .arg("-a")
            .arg(&rootfs)
            .arg(dir.join(format!("rootfs-{c}")))
            .status()
            .unwrap();
        assert!(st.success());
    }
    cni_bin(dir);
    let net = format!("mvdp{}", d.lab.prefix());
    let ns = net.clone();
    let netd = dir.join("ctr-net.d");
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::write(
        netd.join("10-mvdp.conflist"),
        conflist(&d, dir, &net, "1.0.0").to_string(),
    )
    .unwrap();
    write_containerd_config(dir);
    let script = r#"
containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
CPID=$!
C="ctr -a $T/ctrd/c.sock -n $NS"
cleanup() {
  for id in ctr-a ctr-b; do
    $C task kill -s KILL $id >/dev/null 2>&1 || true
  done
  sleep 0.2
  for id in ctr-a ctr-b; do
    $C task delete $id >/dev/null 2>&1 || true
    $C container delete $id >/dev/null 2>&1 || true
  done
  kill $CPID 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
i=0; until [ -S "$T/ctrd/c.sock" ]; do i=$((i+1)); [ $i -lt 100 ] || { echo "containerd did not start"; exit 1; }; sleep 0.1; done
# ctr reads CNI configurations only from /etc/cni/net.d and /opt/cni/bin.
mount --bind "$T/ctr-net.d" /etc/cni/net.d
mount -t tmpfs opt /opt
mkdir -p /opt/cni/bin
mount --bind "$T/cnibin" /opt/cni/bin
# a runs until killed; ctr run (not detached) calls DEL when it ends.
$C run --rm --cni --env PATH=/bin --rootfs "$T/rootfs-a" ctr-a sleep 60 >"$T/ctr-a.log" 2>&1 &
APID=$!
i=0; until [ "$(ports)" != "[]" ]; do i=$((i+1)); [ $i -lt 100 ] || { echo "no port for ctr-a"; cat "$T/ctr-a.log"; exit 1; }; sleep 0.1; done
echo "ports_one=$(ports)"
A=$(ports | grep -o '"ip":"[0-9.]*' | head -1 | grep -o '[0-9.]*$')
echo "a_ip=$A"
$C run --rm --cni --env PATH=/bin --rootfs "$T/rootfs-b" ctr-b sh -c "ping -c 2 -W 2 $A && ping -c 2 -W 2 198.18.0.254" >"$T/ctr-b.log" 2>&1 && echo "pings=ok" || cat "$T/ctr-b.log"
echo "ports_after_b=$(ports)"
$C task kill -s KILL ctr-a
wait $APID || true
echo "ports_after_a=$(ports)"
"#;
    let (ok, out) = run_script(&d, dir, "ctr.sh", script, &[("NS", ns.clone())]);
    remove_cgroups(&[&ns]);
    assert!(ok, "ctr script failed:\n{out}\ndaemon log:\n{}", d.log());
    let one: serde_json::Value = serde_json::from_str(marked(&out, "ports_one")[0]).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(
        one[0]["container_id"],
        format!("{ns}-ctr-a"),
        "ctr's container id: {out}"
    );
    assert!(marked(&out, "a_ip")[0].starts_with("198.18.0.1"), "{out}");
    assert_eq!(marked(&out, "pings"), ["ok"], "{out}");
    assert_eq!(
        without_groups(marked(&out, "ports_after_b")[0]),
        without_groups(marked(&out, "ports_one")[0]),
        "b's DEL: {out}"
    );
    assert_eq!(
        marked(&out, "ports_after_a"),
        ["[]"],
        "DEL (empty CNI_NETNS) for a: {out}"
    );
    assert!(ports(&d).is_empty());
    assert!(
        allocations(dir, &net).is_empty(),
        "IPAM released: {:?}",
        allocations(dir, &net)
    );
}

/// `port ls --json` output without each port's multicast groups: the daemon reads them a poll
/// after a port appears, so a listing taken right after an ADD may show them unread (null).
fn without_groups(listing: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(listing).unwrap();
    for p in v.as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("multicast");
    }
    v
}
