//! Raw Ethernet frames: built with pnet_packet, sent and captured with pnet_datalink
//! (AF_PACKET).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pnet_datalink::{Channel, Config, MacAddr, NetworkInterface};
use pnet_packet::ethernet::{EtherType, MutableEthernetPacket};

/// IEEE 802 "local experimental" ethertype: nobody's protocol, so probe frames never
/// disturb a stack that receives them.
pub const PROBE_ETHERTYPE: u16 = 0x88b5;

/// An Ethernet frame with an optional 802.1Q tag (`vlan` = TCI) and a payload naming it,
/// padded to the 60-byte minimum.
pub fn frame(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, marker: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some(tci) = vlan {
        payload.extend_from_slice(&tci.to_be_bytes());
        payload.extend_from_slice(&PROBE_ETHERTYPE.to_be_bytes());
    }
    payload.extend_from_slice(marker.as_bytes());
    payload.resize(payload.len().max(46), 0);
    let mut buf = vec![0u8; 14 + payload.len()];
    let mut eth = MutableEthernetPacket::new(&mut buf).expect("buffer holds an Ethernet header");
    eth.set_destination(MacAddr::from(dst));
    eth.set_source(MacAddr::from(src));
    eth.set_ethertype(EtherType(if vlan.is_some() {
        0x8100
    } else {
        PROBE_ETHERTYPE
    }));
    eth.set_payload(&payload);
    buf
}

/// The marker a [`frame`] carries, if `bytes` is one (tagged or not).
pub fn marker(bytes: &[u8]) -> Option<String> {
    let tagged = [0x81, 0x00];
    let body = match bytes.get(12..14)? {
        t if t == tagged && bytes.get(16..18)? == PROBE_ETHERTYPE.to_be_bytes() => {
            bytes.get(18..)?
        }
        t if t == PROBE_ETHERTYPE.to_be_bytes() => bytes.get(14..)?,
        _ => return None,
    };
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    Some(String::from_utf8_lossy(&body[..end]).into_owned())
}

fn interface(ifname: &str) -> Result<NetworkInterface> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == ifname)
        .with_context(|| format!("no interface {ifname} in this network namespace"))
}

/// Sends `frames` out of `ifname`.
pub fn send(ifname: &str, frames: &[Vec<u8>]) -> Result<()> {
    let Channel::Ethernet(mut tx, _rx) =
        pnet_datalink::channel(&interface(ifname)?, Config::default())
            .with_context(|| format!("packet socket on {ifname}"))?
    else {
        bail!("{ifname}: not an Ethernet channel")
    };
    for f in frames {
        tx.send_to(f, None)
            .ok_or_else(|| anyhow!("{ifname}: send refused"))?
            .with_context(|| format!("sending on {ifname}"))?;
    }
    Ok(())
}

/// Frames arriving on one interface.
pub struct Capture {
    rx: Box<dyn pnet_datalink::DataLinkReceiver>,
}

impl Capture {
    pub fn open(ifname: &str) -> Result<Capture> {
        let cfg = Config {
            read_timeout: Some(Duration::from_millis(20)),
            ..Config::default()
        };
        let Channel::Ethernet(_tx, rx) = pnet_datalink::channel(&interface(ifname)?, cfg)
            .with_context(|| format!("packet socket on {ifname}"))?
        else {
            bail!("{ifname}: not an Ethernet channel")
        };
        Ok(Capture { rx })
    }

    /// Everything that arrives within `wait`.
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
