//! The network configuration a runtime streams on stdin: the reference macvlan plugin's keys
//! (`master`, `mode`, `mtu`, `mac`, `ipam`) plus mvdp's `vlan` and `socket`.

use serde::Deserialize;
use serde_json::Value;

use super::env::Env;
use super::error::{code, invalid_config, CniError, CniResult};
use crate::daemon::api::Attachment;
use mvdp_switch::Mac;

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RuntimeConfig {
    /// Set by runtimes for plugins declaring the `mac` capability.
    #[serde(default)]
    pub mac: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GcAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The parent interface; `eth1.100` is VLAN 100 on eth1. Default: the default route's.
    #[serde(default)]
    pub master: Option<String>,
    /// bridge (default), private, vepa, passthru.
    #[serde(default)]
    pub mode: Option<String>,
    /// 0 or absent: the parent's.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub mac: Option<String>,
    /// 802.1Q VLAN id on `master` (must agree with a dotted master).
    #[serde(default)]
    pub vlan: Option<u32>,
    /// The mvdp daemon's control socket.
    #[serde(default)]
    pub socket: Option<String>,
    #[serde(default)]
    pub ipam: Option<Value>,
    #[serde(default)]
    pub dns: Option<Value>,
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<GcAttachment>>,
    /// The name an earlier libcni used for the same list.
    #[serde(rename = "cni.dev/attachments", default)]
    pub attachments: Option<Vec<GcAttachment>>,
}

/// The network configuration, parsed, with the raw JSON (what delegated IPAM plugins get).
#[derive(Clone, Debug)]
pub struct Config {
    pub conf: NetConf,
    pub raw: Value,
}

/// Decodes stdin: not JSON, or keys of the wrong type, is code 6; a missing name is code 7.
pub fn decode(stdin: &[u8]) -> CniResult<Config> {
    let raw: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(code::DECODE, "decoding the network configuration")
            .with_details(e.to_string())
    })?;
    if !raw.is_object() {
        return Err(CniError::new(
            code::DECODE,
            "decoding the network configuration: not a JSON object",
        ));
    }
    let mut conf: NetConf = serde_json::from_value(raw.clone()).map_err(|e| {
        CniError::new(code::DECODE, "decoding the network configuration")
            .with_details(e.to_string())
    })?;
    if conf.cni_version.is_empty() {
        // What libcni assumes of a configuration without one.
        conf.cni_version = "0.1.0".into();
    }
    Ok(Config { conf, raw })
}

impl NetConf {
    /// What ADD, CHECK and STATUS need beyond decoding: a name, a known mode, a sane VLAN and MTU.
    pub fn validate(&self) -> CniResult<()> {
        if self.name.is_empty() {
            return Err(invalid_config("the network configuration has no name"));
        }
        if let Some(m) = &self.mode {
            if !["bridge", "private", "vepa", "passthru"].contains(&m.as_str()) {
                return Err(invalid_config(format!(
                    "unknown mode {m:?}: expected bridge, private, vepa or passthru"
                )));
            }
        }
        if let Some(v) = self.vlan {
            if !(1..=4094).contains(&v) {
                return Err(invalid_config(format!("vlan {v} is outside 1-4094")));
            }
        }
        if let Some(ipam) = &self.ipam {
            if self.ipam_type().is_none() && ipam.as_object().is_some_and(|o| !o.is_empty()) {
                return Err(invalid_config("ipam has no \"type\""));
            }
        }
        Ok(())
    }

    /// The IPAM plugin's name, when the configuration delegates IPAM.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()?
            .get("type")?
            .as_str()
            .filter(|t| !t.is_empty())
    }

    /// The port's MAC: `runtimeConfig.mac`, else CNI_ARGS `MAC=`, else the configuration's `mac`.
    pub fn mac(&self, env: &Env) -> CniResult<Option<String>> {
        let (mac, from, code) = if let Some(m) = &self.runtime_config.mac {
            (m, "runtimeConfig.mac", code::INVALID_CONFIG)
        } else if let Some(m) = &env.args.mac {
            (m, "CNI_ARGS MAC", code::INVALID_ENV)
        } else if let Some(m) = &self.mac {
            (m, "mac", code::INVALID_CONFIG)
        } else {
            return Ok(None);
        };
        match mac.parse::<Mac>() {
            Ok(m) if m.is_valid_unicast() => Ok(Some(m.to_string())),
            Ok(m) => Err(CniError::new(
                code,
                format!("{from}: {m} is not a unicast MAC"),
            )),
            Err(e) => Err(CniError::new(code, format!("{from}: {e}"))),
        }
    }

    /// The attachments GC must keep.
    pub fn gc_keep(&self) -> Vec<Attachment> {
        self.valid_attachments
            .iter()
            .chain(self.attachments.iter())
            .flatten()
            .map(|a| Attachment {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
            })
            .collect()
    }

    pub fn mtu(&self) -> Option<u32> {
        self.mtu.filter(|m| *m != 0)
    }
}

/// The interface of the IPv4 default route in this network namespace (`/proc/net/route`), as the
/// reference plugin picks its default master.
pub fn default_route_interface() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_default_route(&table)
}

fn parse_default_route(table: &str) -> Option<String> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; flags 0x1 = RTF_UP.
        let up = f
            .get(3)
            .and_then(|x| u32::from_str_radix(x, 16).ok())
            .is_some_and(|fl| fl & 1 != 0);
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000" && up).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::env::Args;

    #[test]
    fn decode_errors_have_their_codes() {
        assert_eq!(decode(b"{not json").unwrap_err().code, 6);
        assert_eq!(decode(b"[1]").unwrap_err().code, 6);
        assert_eq!(decode(br#"{"name":"n","mtu":"big"}"#).unwrap_err().code, 6);
        let c = decode(br#"{"name":"n","type":"mvdp","extra":1}"#).unwrap();
        assert_eq!(c.conf.cni_version, "0.1.0");
        let bad = |j: &str| decode(j.as_bytes()).unwrap().conf.validate().unwrap_err();
        assert_eq!(bad(r#"{"type":"mvdp"}"#).code, 7);
        assert!(bad(r#"{"name":"n","mode":"fast"}"#)
            .msg
            .contains("unknown mode"));
        assert_eq!(bad(r#"{"name":"n","vlan":4095}"#).code, 7);
        assert_eq!(bad(r#"{"name":"n","ipam":{"subnet":"x"}}"#).code, 7);
    }

    #[test]
    fn mac_precedence_runtime_config_then_args_then_config() {
        let c = decode(
            br#"{"name":"n","mac":"02:00:00:00:00:03","runtimeConfig":{"mac":"02:00:00:00:00:01"}}"#,
        )
        .unwrap()
        .conf;
        let env = |m: Option<&str>| Env {
            args: Args {
                mac: m.map(str::to_string),
            },
            ..Env::default()
        };
        let with_args = env(Some("02:00:00:00:00:02"));
        assert_eq!(c.mac(&with_args).unwrap().unwrap(), "02:00:00:00:00:01");
        let mut c2 = c.clone();
        c2.runtime_config.mac = None;
        assert_eq!(c2.mac(&with_args).unwrap().unwrap(), "02:00:00:00:00:02");
        assert_eq!(c2.mac(&env(None)).unwrap().unwrap(), "02:00:00:00:00:03");
        assert_eq!(c2.mac(&env(Some("zz"))).unwrap_err().code, 4);
        c2.mac = Some("01:00:5e:00:00:01".into());
        assert_eq!(c2.mac(&env(None)).unwrap_err().code, 7);
    }

    #[test]
    fn default_route_interface_from_proc_net_route() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth1\t000012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                 eth1\t00000000\tFE0012C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(parse_default_route(t).as_deref(), Some("eth1"));
        assert_eq!(
            parse_default_route(t.lines().take(2).collect::<Vec<_>>().join("\n").as_str()),
            None
        );
    }
}
