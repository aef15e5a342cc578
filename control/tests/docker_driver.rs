//! The Docker remote driver's socket without dockerd (tests/docker_plugin.rs has the real one): a
//! daemon on a recording fake dataplane, acting in the test's own netns, nothing persisted; the
//! calls that touch no interface. Needs no root.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use mvdp_control::daemon::{serve, DaemonConfig};
use mvdp_lab::testing::{temp_dir, FakeDataplane};
use serde_json::{json, Value};

/// One HTTP/1.1 exchange on `sock`: the status code and the JSON body.
fn post(sock: &Path, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = UnixStream::connect(sock).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/vnd.docker.plugins.v1.2+json"),
        "{head}"
    );
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn the_driver_socket_answers_docker_calls() {
    let dir = temp_dir("docker-driver");
    let server = serve(
        FakeDataplane::default(),
        DaemonConfig {
            state_dir: None,
            max_mtu: 3500,
            netns: None,
        },
        &dir.join("mvdp.sock"),
    )
    .unwrap();
    let sock = dir.join("plugins/mvdp.sock");
    let plugin = mvdp_control::docker::serve(server.requester(), &sock).unwrap();
    // A second driver on the same socket is refused while the first answers.
    assert!(mvdp_control::docker::serve(server.requester(), &sock).is_err());

    let ok = |path: &str, body: Value| {
        let (code, v) = post(&sock, "POST", path, &body.to_string());
        assert_eq!(code, 200, "{path}: {v}");
        v
    };
    assert_eq!(
        ok("/Plugin.Activate", json!({})),
        json!({"Implements": ["NetworkDriver"]})
    );
    assert_eq!(
        ok("/NetworkDriver.GetCapabilities", json!({}))["Scope"],
        "local"
    );
    for call in [
        "DiscoverNew",
        "DiscoverDelete",
        "Leave",
        "ProgramExternalConnectivity",
        "RevokeExternalConnectivity",
    ] {
        assert_eq!(
            ok(&format!("/NetworkDriver.{call}"), json!({})),
            json!({}),
            "{call}"
        );
    }
    assert_eq!(
        ok("/NetworkDriver.EndpointOperInfo", json!({})),
        json!({"Value": {}})
    );
    // Refusals are Docker's {"Err": ...} with mvdp's reason.
    let err = |path: &str, body: &str, want: &str| {
        let (_, v) = post(&sock, "POST", path, body);
        let e = v["Err"].as_str().unwrap_or_default().to_string();
        assert!(e.starts_with("mvdp: ") && e.contains(want), "{path}: {v}");
    };
    err(
        "/NetworkDriver.CreateNetwork",
        &json!({"NetworkID": "abc", "Options": {"com.docker.network.generic": {"parent": "eth1", "colour": "red"}},
                "IPv4Data": [{"Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"}]})
        .to_string(),
        "unknown option -o colour",
    );
    err("/NetworkDriver.CreateNetwork", "{not json", "malformed");
    err(
        "/NetworkDriver.Join",
        &json!({"NetworkID": "abc", "EndpointID": "e1", "SandboxKey": "/x"}).to_string(),
        "has no port",
    );
    err("/NetworkDriver.Reboot", "{}", "not a call");
    assert_eq!(post(&sock, "GET", "/Plugin.Activate", "").0, 405);
    // Deleting what is not there is fine (dockerd retries, restarts).
    assert_eq!(
        ok(
            "/NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": "abc", "EndpointID": "e1"})
        ),
        json!({})
    );
    assert_eq!(
        ok("/NetworkDriver.DeleteNetwork", json!({"NetworkID": "abc"})),
        json!({})
    );

    plugin.shutdown();
    assert!(!sock.exists(), "the socket goes with the driver");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
