//! `mvdp demo`, the README's main command for now, run as a user would: every kind of frame
//! ends up where the demux design says, and the lab is gone afterwards.

mod common;

use std::process::Command;

use common::require_root;

#[test]
fn the_demo_delivers_every_frame_where_the_design_says_and_cleans_up() {
    require_root!("the_demo_delivers_every_frame_where_the_design_says_and_cleans_up");
    let name = common::unique_prefix("demo");
    let out = Command::new(common::BIN)
        .args(["demo", "--json", "--frames", "50", "--lab-name", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mvdp demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let ports = r["port_socket_frames"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    for p in ports {
        assert_eq!(
            p["received"], 50,
            "every frame for a port lands in its socket: {p}"
        );
    }
    assert_eq!(
        r["flood_tap_frames"], 50,
        "every broadcast reaches the flood tap"
    );
    assert_eq!(r["host_ping_ok"], true);
    assert_eq!(r["demux_counters"]["redirect"], 100);
    assert_eq!(r["demux_counters"]["drop_no_socket"], 0);
    assert!(
        r["demux_counters"]["pass_host"].as_u64().unwrap() >= 50,
        "unicast for nobody goes to the host"
    );
    let left = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!left.contains(&name), "the demo removed its lab: {left}");
}

#[test]
fn the_demo_refuses_bad_arguments() {
    let out = Command::new(common::BIN)
        .args(["demo", "--frames", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frames"));
}
