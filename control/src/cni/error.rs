//! CNI errors: what a plugin prints on stdout when it fails, with the spec's codes.

use serde::{Deserialize, Serialize};

/// The CNI spec's well-known error codes (1-99 are the spec's; 100+ are plugin-specific).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (its netns is gone).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID, ...).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content (stdin, an IPAM plugin's reply).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: a transient condition (here: the mvdp daemon is not reachable).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin is not available (cannot take ADDs).
    pub const NOT_AVAILABLE: u32 = 50;
    /// mvdp's own: CHECK found the attachment different from its prevResult.
    pub const CHECK_FAILED: u32 = 100;
}

/// A CNI error result: `{"cniVersion", "code", "msg", "details"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// The JSON a plugin prints for this error, for a caller speaking `version`.
    pub fn to_json(&self, version: &str) -> String {
        serde_json::json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
        .to_string()
    }
}

pub type CniResult<T> = Result<T, CniError>;

pub fn invalid_config(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

pub fn invalid_env(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_ENV, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_as_the_spec_says() {
        let e = CniError::new(code::INVALID_CONFIG, "bad").with_details("why");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.0.0","code":7,"msg":"bad","details":"why"})
        );
    }
}
