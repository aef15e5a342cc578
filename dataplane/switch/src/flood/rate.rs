//! A port's flood rate cap as the operator gives it (`mvdp daemon --flood-rate PPS[,BURST]`):
//! its checked values, its text form and its errors. The bucket itself is the budget's.

use std::fmt;
use std::str::FromStr;

use super::PORT_FLOOD_SHARE;

/// A port's flood rate cap: a token bucket holding at most `burst` broadcasts/multicasts,
/// refilled at `pps` per second. `pps == 0` means unlimited (the per-turn share still applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FloodRate {
    pub pps: u32,
    pub burst: u32,
}

/// A flood rate that cannot be used, or text that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FloodRateError {
    #[error("{0:?} is not a flood rate: PPS[,BURST] (broadcasts per second and per port, e.g. 2000 or 2000,200), or 0 for unlimited")]
    Syntax(String),
    #[error("flood rate {0} per second is above the most mvdp takes ({max}); use 0 for unlimited", max = FloodRate::MAX_PPS)]
    RateTooHigh(u64),
    #[error("flood burst {0} is out of range: 1 to {max}", max = FloodRate::MAX_BURST)]
    BurstOutOfRange(u64),
    #[error("a burst ({0}) needs a rate: 0 means unlimited and takes none")]
    BurstWithoutRate(u64),
}

impl FloodRate {
    /// No cap in time.
    pub const UNLIMITED: FloodRate = FloodRate { pps: 0, burst: 0 };
    /// The daemon's default: 2,000 broadcasts/multicasts per second per port, in bursts of up to
    /// 200. A container's own link-local traffic is far below it: ARP and IPv6 neighbour
    /// discovery send one request per neighbour being resolved (a container opening connections
    /// to 1,000 new neighbours in a second is already a scan), DHCP a handful per lease, mDNS and
    /// LLMNR a few per second in announcement bursts of tens, MLD/IGMP reports a few per group
    /// joined. Only a multicast *application* (a market-data or video stream) goes above it,
    /// and its operator sets `--flood-rate` (or 0). A storm is capped at 1 % of what one
    /// container sends here (~200,000/s): the copies and wire frames forwarded of it cost the
    /// worker a few milliseconds per second.
    pub const DEFAULT: FloodRate = FloodRate {
        pps: 2000,
        burst: 200,
    };
    pub const MAX_PPS: u32 = 10_000_000;
    pub const MAX_BURST: u32 = 1_000_000;

    /// A cap of `pps` per second in bursts of `burst` (both checked); `pps == 0` with no burst is
    /// unlimited.
    pub fn new(pps: u64, burst: u64) -> Result<FloodRate, FloodRateError> {
        if pps == 0 {
            return match burst {
                0 => Ok(FloodRate::UNLIMITED),
                b => Err(FloodRateError::BurstWithoutRate(b)),
            };
        }
        if pps > u64::from(FloodRate::MAX_PPS) {
            return Err(FloodRateError::RateTooHigh(pps));
        }
        if burst == 0 || burst > u64::from(FloodRate::MAX_BURST) {
            return Err(FloodRateError::BurstOutOfRange(burst));
        }
        Ok(FloodRate {
            pps: pps as u32,
            burst: burst as u32,
        })
    }

    /// Without a burst given: a tenth of a second's worth, at least the per-turn share.
    pub fn default_burst(pps: u32) -> u32 {
        (pps / 10).clamp(u32::from(PORT_FLOOD_SHARE), FloodRate::MAX_BURST)
    }

    pub fn is_unlimited(self) -> bool {
        self.pps == 0
    }
}

impl Default for FloodRate {
    fn default() -> FloodRate {
        FloodRate::DEFAULT
    }
}

/// `PPS[,BURST]`, `0` or `unlimited`.
impl FromStr for FloodRate {
    type Err = FloodRateError;

    fn from_str(s: &str) -> Result<FloodRate, FloodRateError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("unlimited") {
            return Ok(FloodRate::UNLIMITED);
        }
        let num = |x: &str| {
            x.trim()
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| FloodRateError::Syntax(s.to_string()))
        };
        match t.split_once(',') {
            Some((p, b)) => FloodRate::new(num(p)?, num(b)?),
            None => {
                let pps = num(t)?;
                let burst = if pps == 0 || pps > u64::from(FloodRate::MAX_PPS) {
                    0
                } else {
                    u64::from(FloodRate::default_burst(pps as u32))
                };
                FloodRate::new(pps, burst)
            }
        }
    }
}

/// `2000/s, burst 200` or `unlimited`.
impl fmt::Display for FloodRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            f.write_str("unlimited")
        } else {
            write!(f, "{}/s, burst {}", self.pps, self.burst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_print_and_refuse_bad_text() {
        let r = |pps, burst| FloodRate { pps, burst };
        assert_eq!("2000".parse(), Ok(r(2000, 200)));
        assert_eq!(" 2000 , 50 ".parse(), Ok(r(2000, 50)));
        assert_eq!("1_000_000".parse(), Ok(r(1_000_000, 100_000)));
        assert_eq!(
            "10".parse(),
            Ok(r(10, PORT_FLOOD_SHARE as u32)),
            "at least the share"
        );
        assert_eq!("0".parse(), Ok(FloodRate::UNLIMITED));
        assert_eq!("Unlimited".parse(), Ok(FloodRate::UNLIMITED));
        assert_eq!("0,0".parse(), Ok(FloodRate::UNLIMITED));
        for bad in ["", "abc", "-5", "1,2,3", "1.5", ",5", "5,"] {
            assert_eq!(
                bad.parse::<FloodRate>(),
                Err(FloodRateError::Syntax(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            "0,5".parse::<FloodRate>(),
            Err(FloodRateError::BurstWithoutRate(5))
        );
        assert_eq!(
            "10,0".parse::<FloodRate>(),
            Err(FloodRateError::BurstOutOfRange(0))
        );
        assert_eq!(
            "10,1000001".parse::<FloodRate>(),
            Err(FloodRateError::BurstOutOfRange(1_000_001))
        );
        assert_eq!(
            "10000001".parse::<FloodRate>(),
            Err(FloodRateError::RateTooHigh(10_000_001))
        );
        let e = "x".parse::<FloodRate>().unwrap_err().to_string();
        assert!(e.contains("PPS[,BURST]") && e.contains("\"x\""), "{e}");
        assert_eq!(FloodRate::DEFAULT.to_string(), "2000/s, burst 200");
        assert_eq!(FloodRate::UNLIMITED.to_string(), "unlimited");
        assert_eq!(FloodRate::default(), FloodRate::DEFAULT);
        let j = serde_json::to_string(&FloodRate::DEFAULT).unwrap();
        assert_eq!(j, r#"{"pps":2000,"burst":200}"#);
    }
}
