//! Raw Ethernet frames for tests: built with pnet_packet, sent and captured with
//! pnet_datalink (AF_PACKET) inside a network namespace.

use std::time::{Duration, Instant};

use pnet_datalink::MacAddr;
use pnet_datalink::{Channel, Config, NetworkInterface};
use pnet_packet::ethernet::{EtherType, MutableEthernetPacket};

/// An Ethernet frame with an optional 802.1Q tag and a payload that names it, so a
/// receiver can tell which frame it got.
pub fn frame(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, marker: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some(tci) = vlan {
        payload.extend_from_slice(&tci.to_be_bytes());
        payload.extend_from_slice(&0x88b5u16.to_be_bytes());
    }
    payload.extend_from_slice(marker.as_bytes());
    payload.resize(payload.len().max(46), 0);
    let mut buf = vec![0u8; 14 + payload.len()];
    let mut eth = MutableEthernetPacket::new(&mut buf).unwrap();
    eth.set_destination(MacAddr::from(dst));
    eth.set_source(MacAddr::from(src));
    // 0x88b5: IEEE "local experimental" ethertype, nobody's protocol.
    eth.set_ethertype(EtherType(if vlan.is_some() { 0x8100 } else { 0x88b5 }));
    eth.set_payload(&payload);
    buf
}

/// The marker a [`frame`] carries, if `bytes` is one of ours (tagged or not).
pub fn marker(bytes: &[u8]) -> Option<String> {
    let body = match bytes.get(12..14)? {
        [0x81, 0x00] => bytes.get(18..)?,
        [0x88, 0xb5] => bytes.get(14..)?,
        _ => return None,
    };
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}

fn interface(ifname: &str) -> NetworkInterface {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == ifname)
        .unwrap_or_else(|| panic!("no interface {ifname} in this netns"))
}

/// Sends `frames` out of `ifname` (calling thread's netns).
pub fn send(ifname: &str, frames: &[Vec<u8>]) {
    let Channel::Ethernet(mut tx, _rx) =
        pnet_datalink::channel(&interface(ifname), Config::default()).unwrap()
    else {
        panic!("not an Ethernet channel")
    };
    for f in frames {
        tx.send_to(f, None).unwrap().unwrap();
    }
}

/// Captures frames arriving on `ifname` for `wait` (calling thread's netns).
pub struct Capture {
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
}

impl Capture {
    pub fn open(ifname: &str) -> Capture {
        let cfg = Config {
            read_timeout: Some(Duration::from_millis(20)),
            ..Config::default()
        };
        let Channel::Ethernet(_tx, rx) = pnet_datalink::channel(&interface(ifname), cfg).unwrap()
        else {
            panic!("not an Ethernet channel")
        };
        Capture { rx }
    }

    pub fn collect(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        while Instant::now() < end {
            if let Ok(f) = self.rx.next() {
                out.push(f.to_vec());
            }
        }
        out
    }
}
