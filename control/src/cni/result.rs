//! CNI results: read in any version mvdp speaks (an IPAM plugin's, a prevResult), written in the
//! version the caller asked for.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{code, CniError, CniResult};
use super::version::at_least;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// 1.1.0 and later only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    /// 1.1.0's `mtu`, `advmss`, `priority`, `table`, `scope`: carried through, written for 1.1.0.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A result of any version 0.3.0 and later, without its `cniVersion`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResultBody {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Option<Value>,
}

impl CniResultBody {
    /// Reads a result (0.3.0 or later: 0.3.x/0.4.0 carry a `version` per IP, which is ignored).
    pub fn parse(v: &Value) -> CniResult<CniResultBody> {
        if v.get("ip4").is_some() || v.get("ip6").is_some() {
            return Err(CniError::new(
                code::DECODE,
                "a CNI result in the 0.1/0.2 format (ip4/ip6) is not supported",
            ));
        }
        serde_json::from_value(v.clone()).map_err(|e| {
            CniError::new(code::DECODE, "decoding a CNI result").with_details(e.to_string())
        })
    }

    /// The result in `version`'s format.
    pub fn to_value(&self, version: &str) -> Value {
        let v1 = at_least(version, "1.0.0");
        let v11 = at_least(version, "1.1.0");
        let mut out = Map::new();
        out.insert("cniVersion".into(), version.into());
        if !self.interfaces.is_empty() {
            let ifs: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    if !v11 {
                        i.mtu = None;
                    }
                    serde_json::to_value(i).unwrap_or_default()
                })
                .collect();
            out.insert("interfaces".into(), ifs.into());
        }
        if !self.ips.is_empty() {
            let ips: Vec<Value> = self
                .ips
                .iter()
                .map(|ip| {
                    let mut o = serde_json::to_value(ip).unwrap_or_default();
                    if !v1 {
                        let family = if ip.address.contains(':') { "6" } else { "4" };
                        o["version"] = family.into();
                    }
                    o
                })
                .collect();
            out.insert("ips".into(), ips.into());
        }
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if !v11 {
                        r.extra.clear();
                    }
                    serde_json::to_value(r).unwrap_or_default()
                })
                .collect();
            out.insert("routes".into(), routes.into());
        }
        if let Some(d) = self
            .dns
            .as_ref()
            .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
        {
            out.insert("dns".into(), d.clone());
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_are_written_in_the_callers_version() {
        let ipam = json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "priority": 5}],
            "dns": {"nameservers": ["10.1.0.1"]}
        });
        let mut r = CniResultBody::parse(&ipam).unwrap();
        r.interfaces.push(Interface {
            name: "eth0".into(),
            mac: Some("02:00:00:00:00:01".into()),
            mtu: Some(1500),
            sandbox: Some("/run/netns/x".into()),
        });
        r.ips[0].interface = Some(0);
        let old = r.to_value("0.3.1");
        assert_eq!(old["ips"][0]["version"], "4");
        assert!(old["interfaces"][0].get("mtu").is_none());
        assert!(old["routes"][0].get("priority").is_none());
        assert_eq!(old["dns"]["nameservers"][0], "10.1.0.1");
        let new = r.to_value("1.1.0");
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][0]["mtu"], 1500);
        assert_eq!(new["routes"][0]["priority"], 5);
        assert_eq!(new["cniVersion"], "1.1.0");
        // 0.4.0 results (with "version") read back the same.
        assert_eq!(
            CniResultBody::parse(&r.to_value("0.4.0")).unwrap().ips,
            r.ips
        );
        assert_eq!(
            CniResultBody::parse(&json!({"ip4": {"ip": "10.0.0.1/8"}}))
                .unwrap_err()
                .code,
            6
        );
        // An L2-only result: interfaces only.
        let l2 = CniResultBody {
            interfaces: r.interfaces.clone(),
            ..Default::default()
        };
        let v = l2.to_value("1.0.0");
        assert!(v.get("ips").is_none() && v.get("routes").is_none() && v.get("dns").is_none());
    }
}
