//! What each endpoint received, as the markers of the probe frames (ethertype
//! [`PROBE_ETHERTYPE`](crate::probe::raw::PROBE_ETHERTYPE)) that reached it.
//!
//! Two kinds of receiver, because "received" means two different things:
//! - a stack ([`StackRecorder`]): an AF_PACKET socket bound to the probe ethertype on one interface. Such
//!   a socket sits after the rx handler (macvlan, bridge), so it sees exactly what that interface's stack
//!   is handed, and never what the interface sends. It holds the interface promiscuous, as a sniffer
//!   does, so a macvlan port's multicast filter lets every group through (an mvdp port's too, once
//!   the daemon has followed the change: the runner waits for it).
//! - the wire ([`WireRecorder`]): a tap on the wire switch's port towards the parent, counting frames
//!   that *arrive* from the parent (not those the switch sends to it).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    recvfrom, setsockopt, socket, sockopt, AddressFamily, LinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nix::sys::time::TimeVal;
use pnet_datalink::{Channel, ChannelType, Config, DataLinkReceiver};

use crate::probe::raw::{marker, PROBE_ETHERTYPE};
use mvdp_control::{NetNs, Netlink};

/// How long one read waits before checking the deadline.
const POLL: Duration = Duration::from_millis(20);

/// The markers in the probe payloads a stack was handed.
pub struct StackRecorder {
    rx: Box<dyn DataLinkReceiver>,
}

impl StackRecorder {
    /// Opens the receiver on `ifname` inside `ns`.
    pub fn open(ns: &NetNs, ifname: &str) -> Result<StackRecorder> {
        let ifname = ifname.to_string();
        let rx = ns.run(move || -> Result<Box<dyn DataLinkReceiver>> {
            let iface = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == ifname)
                .with_context(|| format!("no interface {ifname}"))?;
            let cfg = Config {
                read_timeout: Some(POLL),
                channel_type: ChannelType::Layer3(PROBE_ETHERTYPE),
                promiscuous: true,
                ..Config::default()
            };
            match pnet_datalink::channel(&iface, cfg)
                .with_context(|| format!("probe socket on {ifname}"))?
            {
                Channel::Ethernet(_tx, rx) => Ok(rx),
                _ => bail!("{ifname}: not an Ethernet channel"),
            }
        })??;
        Ok(StackRecorder { rx })
    }

    /// Markers of everything that arrives within `wait` (a SOCK_DGRAM socket hands over the payload).
    pub fn drain(&mut self, wait: Duration) -> Vec<String> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        while Instant::now() < end {
            if let Ok(payload) = self.rx.next() {
                let stop = payload
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(payload.len());
                out.push(String::from_utf8_lossy(&payload[..stop]).into_owned());
            }
        }
        out
    }
}

/// The markers of probe frames arriving at one wire switch port from the parent.
pub struct WireRecorder {
    fd: OwnedFd,
    ifindex: usize,
}

impl WireRecorder {
    /// Taps `port` (a link in `ns`).
    pub fn open(ns: &NetNs, port: &str) -> Result<WireRecorder> {
        let ifindex = Netlink::in_netns(ns)?.link(port)?.index as usize;
        let fd = ns.run(|| -> Result<OwnedFd> {
            let fd = socket(
                AddressFamily::Packet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::EthAll,
            )
            .context("AF_PACKET socket")?;
            setsockopt(
                &fd,
                sockopt::ReceiveTimeout,
                &TimeVal::from(libc::timeval {
                    tv_sec: 0,
                    tv_usec: POLL.as_micros() as libc::suseconds_t,
                }),
            )
            .context("SO_RCVTIMEO")?;
            Ok(fd)
        })??;
        Ok(WireRecorder { fd, ifindex })
    }

    /// Markers of the probe frames that arrived on the port within `wait`.
    pub fn drain(&mut self, wait: Duration) -> Vec<String> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            let Ok((n, Some(from))) = recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf) else {
                continue;
            };
            if from.ifindex() != self.ifindex || from.pkttype() == libc::PACKET_OUTGOING {
                continue;
            }
            if let Some(m) = marker(&buf[..n]) {
                out.push(m);
            }
        }
        out
    }
}
