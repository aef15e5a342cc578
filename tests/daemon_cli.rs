//! `mvdp daemon` and its client commands, run as a user would (root; each test builds its own lab):
//! every bad input gets a clear error and a non-zero exit and leaves nothing half-created; garbage on
//! the control socket gets an error reply; SIGTERM cleans up and a restart re-adopts the ports.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;

use common::{eventually, links, ping, require_root, unique_prefix, xdp_attached, DaemonLab, BIN};

fn mv_links(ns: &str) -> Vec<String> {
    links(ns)
        .into_iter()
        .filter(|l| l.starts_with("mv"))
        .collect()
}

#[test]
fn a_missing_daemon_is_a_clear_error() {
    let o = Command::new(BIN)
        .args(["network", "ls"])
        .env("MVDP_SOCKET", "/nonexistent/mvdp.sock")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("daemon not running at /nonexistent/mvdp.sock"),
        "{err}"
    );
    // --socket wins over the environment.
    let o = Command::new(BIN)
        .args(["port", "ls", "--socket", "/nonexistent/other.sock"])
        .env("MVDP_SOCKET", "/nonexistent/mvdp.sock")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/other.sock"));
}

#[test]
fn bad_input_is_refused_and_leaves_nothing_half_created() {
    require_root!("bad_input_is_refused_and_leaves_nothing_half_created");
    let d = DaemonLab::start(BIN, &unique_prefix("dbad"), 2, false);
    let (host, c1, c2) = (d.host(), d.c(1), d.c(2));
    // A jumbo parent, so both MTU limits can be hit: the parent's and mvdp's frame size.
    assert!(Command::new("ip")
        .args(["-n", &host, "link", "set", "eth1", "mtu", "9000"])
        .status()
        .unwrap()
        .success());
    let nets = || d.json(&["network", "ls", "--json"]);
    let ports = || d.json(&["port", "ls", "--json"]);

    // Networks.
    d.refused(
        &["network", "create", "x", "--parent", "eth9"],
        "parent interface eth9 does not exist",
    );
    d.refused(
        &["network", "create", "x", "--parent", "eth1.4095"],
        "outside 1-4094",
    );
    d.refused(
        &["network", "create", "x", "--parent", "eth1", "--vlan", "0"],
        "outside 1-4094",
    );
    d.refused(
        &[
            "network", "create", "x", "--parent", "eth1.100", "--vlan", "200",
        ],
        "says VLAN 100 but --vlan says 200",
    );
    d.refused(
        &[
            "network",
            "create",
            "x",
            "--parent",
            "eth1",
            "--subnet",
            "198.18.0.1/24",
        ],
        "host bits",
    );
    assert_eq!(nets(), serde_json::json!([]));
    assert!(
        !xdp_attached(&host, "eth1"),
        "a refused network attached the parent"
    );

    d.ok(&[
        "network",
        "create",
        "lan",
        "--parent",
        "eth1",
        "--subnet",
        "198.18.0.0/24",
    ]);
    d.refused(
        &["network", "create", "lan", "--parent", "eth1.7"],
        "network lan already exists",
    );
    d.refused(
        &["network", "create", "lan2", "--parent", "eth1"],
        "one network per parent and VLAN",
    );
    d.refused(
        &[
            "network", "create", "pt", "--parent", "eth1.300", "--mode", "passthru",
        ],
        "owns its parent alone",
    );
    assert_eq!(nets().as_array().unwrap().len(), 1);

    // Docker's spelling.
    d.ok(&[
        "network",
        "create",
        "dk",
        "-d",
        "macvlan",
        "-o",
        "parent=eth1.100",
        "-o",
        "macvlan_mode=private",
    ]);
    let dk = d.json(&["network", "inspect", "dk"]);
    assert_eq!(dk[0]["Options"]["parent"], "eth1");
    assert_eq!(dk[0]["Options"]["vlan"], "100");
    assert_eq!(dk[0]["Options"]["macvlan_mode"], "private");
    d.ok(&["network", "rm", "dk"]);
    d.refused(
        &[
            "network",
            "create",
            "dk",
            "--parent",
            "eth1",
            "-o",
            "parent=eth2",
        ],
        "-o parent=eth2 contradicts --parent eth1",
    );
    d.refused(
        &["network", "create", "dk", "-o", "ipvlan_mode=l2"],
        "unknown option",
    );
    assert_eq!(nets().as_array().unwrap().len(), 1);

    // Ports.
    d.refused(
        &["port", "add", "lan", "--netns", "no-such-netns"],
        "network namespace no-such-netns does not exist",
    );
    d.refused(
        &["port", "add", "nope", "--netns", &c1],
        "no network named nope",
    );
    d.ok(&[
        "port",
        "add",
        "lan",
        "--netns",
        &c1,
        "--mac",
        "02:00:00:00:00:aa",
        "--ip",
        "198.18.0.50",
    ]);
    let bad: [(&[&str], &str); 6] = [
        (
            &["--mac", "02:00:00:00:00:AA"],
            "MAC 02:00:00:00:00:aa is already used",
        ),
        (
            &["--ip", "198.18.0.50/24"],
            "IP 198.18.0.50 is already used",
        ),
        (&["--ip", "10.1.2.3"], "outside subnet 198.18.0.0/24"),
        (&["--mtu", "9001"], "above the MTU of parent eth1 (9000)"),
        (&["--mtu", "4000"], "above mvdp's limit of 1742"),
        (&["--mac", "01:00:5e:00:00:01"], "not a unicast address"),
    ];
    for (extra, want) in bad {
        let mut args = vec!["port", "add", "lan", "--netns", &c2];
        args.extend_from_slice(extra);
        d.refused(&args, want);
    }
    assert_eq!(ports().as_array().unwrap().len(), 1);
    assert_eq!(mv_links(&host), vec!["mvp0".to_string()], "half-made veths");
    assert_eq!(
        links(&c2),
        vec!["lo".to_string()],
        "half-made container interface"
    );

    // Removing a network with ports.
    d.refused(&["network", "rm", "lan"], "still has 1 port(s)");
    assert_eq!(ports().as_array().unwrap().len(), 1);
    assert!(links(&c1).contains(&"eth0".to_string()));
    d.ok(&["network", "rm", "lan", "--force"]);
    assert_eq!(nets(), serde_json::json!([]));
    assert!(eventually(5, || mv_links(&host).is_empty() && links(&c1) == ["lo"]));
    assert!(
        eventually(5, || !xdp_attached(&host, "eth1")),
        "parent not detached"
    );

    // Passthru: one port only.
    d.ok(&[
        "network",
        "create",
        "pt",
        "--parent",
        "eth1",
        "--mode",
        "passthru",
        "--subnet",
        "198.18.0.0/24",
    ]);
    d.ok(&["port", "add", "pt", "--netns", &c1]);
    d.refused(
        &["port", "add", "pt", "--netns", &c2],
        "already has its one port",
    );
    assert_eq!(links(&c2), vec!["lo".to_string()]);
}

#[test]
fn garbage_on_the_socket_gets_an_error_reply_and_the_daemon_keeps_serving() {
    require_root!("garbage_on_the_socket_gets_an_error_reply_and_the_daemon_keeps_serving");
    let d = DaemonLab::start(BIN, &unique_prefix("dsock"), 0, false);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket must be root-only");

    let mut s = UnixStream::connect(&d.socket).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"\x00\x01\x02 garbage {{{\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(
        line.contains("\"ok\":false") && line.contains("malformed request"),
        "{line}"
    );
    // Oversized request: an error reply, connection closed, daemon fine.
    let mut s2 = UnixStream::connect(&d.socket).unwrap();
    let _ = s2.write_all(&vec![b'{'; 100 * 1024]);
    let mut line2 = String::new();
    BufReader::new(&s2).read_line(&mut line2).unwrap();
    assert!(line2.contains("larger than 65536 bytes"), "{line2}");
    // The first connection and new clients still work.
    s.write_all(b"{\"op\":\"network_ls\"}\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");
    d.ok(&["network", "create", "lan", "--parent", "eth1"]);
    assert_eq!(d.json(&["network", "ls", "--json"])[0]["name"], "lan");

    // A second daemon on the same socket is refused and leaves the first one alone.
    let o = d
        .lab
        .host()
        .command(BIN)
        .args(["daemon", "--state-dir"])
        .arg(d.dir.join("other-state"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("already listening on"), "{err}");
    assert_eq!(d.json(&["network", "ls", "--json"])[0]["name"], "lan");
}

#[test]
fn sigterm_releases_the_parent_and_a_restart_readopts_the_ports() {
    require_root!("sigterm_releases_the_parent_and_a_restart_readopts_the_ports");
    let mut d = DaemonLab::start(BIN, &unique_prefix("dterm"), 1, false);
    let (host, c1) = (d.host(), d.c(1));
    d.create_lan("198.18.0.64/28");
    d.ok(&["port", "add", "lan", "--netns", &c1]);
    assert!(
        ping(&c1, "198.18.0.254", 3),
        "no forwarding before the restart"
    );

    let st = d.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(st.success(), "daemon exit status {st}:\n{}", d.log());
    assert!(!d.socket.exists(), "socket file left behind");
    assert!(eventually(5, || !xdp_attached(&host, "eth1")));
    // The container keeps its interface and address.
    assert!(links(&c1).contains(&"eth0".to_string()));
    assert!(mv_links(&host).contains(&"mvp0".to_string()));

    d.spawn();
    let ports = d.json(&["port", "ls", "--json"]);
    assert_eq!(ports.as_array().unwrap().len(), 1, "{ports}");
    assert_eq!(ports[0]["ip"], "198.18.0.64/24");
    assert_eq!(ports[0]["state"], "up");
    assert!(
        ping(&c1, "198.18.0.254", 3),
        "no forwarding after the restart"
    );
}

#[test]
fn a_netns_given_by_path_works_and_its_end_removes_the_port() {
    require_root!("a_netns_given_by_path_works_and_its_end_removes_the_port");
    let d = DaemonLab::start(BIN, &unique_prefix("dpath"), 0, false);
    d.create_lan("198.18.0.96/28");
    // A "container" as Docker makes them: a process in an unnamed netns.
    let mut proc_ = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("unshare");
    let path = format!("/proc/{}/ns/net", proc_.id());
    // unshare execs sleep once the netns exists: wait for it to differ from ours.
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(eventually(5, || std::fs::read_link(&path).is_ok_and(|l| l != ours)));
    let p = d.json(&[
        "port", "add", "lan", "--netns", &path, "--ifname", "eth7", "--json",
    ]);
    assert_eq!(p["netns"], path.as_str());
    let inside = Command::new("nsenter")
        .args([
            &format!("--net={path}"),
            "ip",
            "-4",
            "addr",
            "show",
            "dev",
            "eth7",
        ])
        .output()
        .unwrap();
    let inside = String::from_utf8_lossy(&inside.stdout);
    assert!(inside.contains("198.18.0.96/24"), "{inside}");

    // The container exits: its netns and both veth ends go, and the daemon forgets the port.
    proc_.kill().unwrap();
    proc_.wait().unwrap();
    assert!(
        eventually(5, || d.json(&["port", "ls", "--json"])
            == serde_json::json!([])),
        "port of a vanished netns still listed"
    );
    assert!(mv_links(&d.host()).is_empty());
}

/// A UMEM too small to hold even one port's rings, or frames of a size AF_XDP cannot use, are
/// refused by the argument parser, before anything (socket, XDP, memory) is set up.
#[test]
fn daemon_refuses_a_tiny_umem_and_odd_frame_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    for (args, want) in [
        (["--frames", "10"], "--frames"),
        (["--frame-size", "3000"], "2048 or 4096"),
        (["--frame-size", "1024"], "2048 or 4096"),
        (["--flood-rate", "lots"], "PPS[,BURST]"),
        (["--flood-rate", "0,10"], "a burst (10) needs a rate"),
        (["--flood-rate", "99999999"], "above the most mvdp takes"),
    ] {
        let out = std::process::Command::new(common::BIN)
            .arg("daemon")
            .args(args)
            .arg("--socket")
            .arg(&sock)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!sock.exists());
    }
}
