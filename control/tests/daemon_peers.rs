//! Ports follow their container's end of the veth (root; skips with a reason otherwise): the container
//! taking `eth0` down or giving it a new MAC reaches the dataplane, as a kernel macvlan follows its own
//! state. Driven with a recording fake dataplane; the container is changed with `ip`.

use mvdp_control::daemon::api::{NetworkCreate, PortAdd};
use mvdp_control::daemon::{Daemon, DaemonConfig};
use mvdp_lab::require_root;
use mvdp_lab::testing::{ip_n, unique_prefix, Call, FakeDataplane};
use mvdp_lab::Lab;

/// Refused as a port MAC, as the runtime refuses a MAC another port of the network has.
const TAKEN: [u8; 6] = [0x02, 0x6d, 0x76, 0x00, 0x09, 0x99];

/// The fake's handle for the one port (parent 0, then port 100 + 1).
const PORT: u32 = 101;

#[test]
fn ports_follow_their_container_ends_state_and_mac() {
    require_root!("ports_follow_their_container_ends_state_and_mac");
    let lab = Lab::builder(&unique_prefix("peer"))
        .containers(1)
        .build()
        .expect("lab");
    let fake = FakeDataplane::default();
    fake.refuse_mac(TAKEN);
    let mut d = Daemon::new(
        fake.clone(),
        DaemonConfig {
            state_dir: None,
            max_mtu: 3500,
            netns: Some(lab.host().clone()),
        },
    )
    .expect("daemon");
    let c1 = lab.container(1).ns.name().to_string();
    d.network_create(&NetworkCreate {
        name: "lan".into(),
        parent: "eth1".into(),
        subnet: Some("198.18.0.0/24".into()),
        ..Default::default()
    })
    .unwrap();
    d.port_add(&PortAdd {
        network: "lan".into(),
        netns: Some(c1.clone()),
        mac: Some("02:6d:76:00:09:01".into()),
        ..Default::default()
    })
    .unwrap();
    fake.take();

    // Nothing changed: nothing applied.
    d.poll_peers();
    assert_eq!(fake.take(), []);
    assert_eq!(d.port_ls()[0].state, "up");

    ip_n(&c1, &["link", "set", "eth0", "down"]);
    d.poll_peers();
    assert_eq!(fake.take(), [Call::SetUp(PORT, false)]);
    assert_eq!(d.port_ls()[0].state, "down");
    d.poll_peers();
    assert_eq!(fake.take(), [], "applied once");

    ip_n(&c1, &["link", "set", "eth0", "up"]);
    d.poll_peers();
    assert_eq!(fake.take(), [Call::SetUp(PORT, true)]);
    assert_eq!(d.port_ls()[0].state, "up");

    ip_n(
        &c1,
        &["link", "set", "eth0", "address", "02:6d:76:00:09:02"],
    );
    d.poll_peers();
    assert_eq!(
        fake.take(),
        [Call::SetMac(PORT, [0x02, 0x6d, 0x76, 0x00, 0x09, 0x02])]
    );
    assert_eq!(d.port_ls()[0].mac, "02:6d:76:00:09:02");

    // A MAC the dataplane refuses: the port keeps its MAC and the daemon does not retry every poll.
    ip_n(
        &c1,
        &["link", "set", "eth0", "address", "02:6d:76:00:09:99"],
    );
    d.poll_peers();
    d.poll_peers();
    assert_eq!(fake.take(), [Call::SetMac(PORT, TAKEN)]);
    assert_eq!(d.port_ls()[0].mac, "02:6d:76:00:09:02");

    // The parent losing carrier keeps a down container's port down when it comes back.
    ip_n(&c1, &["link", "set", "eth0", "down"]);
    d.poll_peers();
    ip_n(lab.host().name(), &["link", "set", "eth1", "down"]);
    d.poll_carrier();
    ip_n(lab.host().name(), &["link", "set", "eth1", "up"]);
    for _ in 0..100 {
        d.poll_carrier();
        if d.network_ls()[0].parent_up {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    assert!(d.network_ls()[0].parent_up);
    let calls = fake.take();
    assert_eq!(
        calls.last(),
        Some(&Call::SetUp(PORT, false)),
        "parent back up, container still down: {calls:?}"
    );
    assert_eq!(d.port_ls()[0].state, "down");
    drop(d.shutdown());
}
