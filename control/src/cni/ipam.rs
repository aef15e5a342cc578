//! Delegating IPAM to the plugin named by `ipam.type`, found on CNI_PATH and run the way a runtime
//! runs a plugin: the same environment (CNI_COMMAND set to the verb) and the same configuration on
//! stdin. A delegate that does not speak the configuration's version is asked again in the newest
//! version both speak (Debian's plugins stop at 1.0.0); GC and STATUS go only to delegates that
//! speak 1.1.0.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::error::{code, invalid_config, CniError, CniResult};
use super::result::CniResultBody;
use super::version::{at_least, highest_common};

pub struct Ipam {
    plugin: PathBuf,
    /// The whole network configuration as the runtime gave it.
    raw: Value,
}

/// Finds `name` in the CNI_PATH directories.
pub fn find(name: &str, path: &[String]) -> CniResult<PathBuf> {
    if name.contains('/') || name == "." || name == ".." {
        return Err(invalid_config(format!(
            "ipam type {name:?} is not a plugin name"
        )));
    }
    if path.is_empty() {
        return Err(super::error::invalid_env(
            "CNI_PATH is not set: it is needed to find the IPAM plugin",
        ));
    }
    path.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            invalid_config(format!(
                "IPAM plugin {name:?} not found in CNI_PATH ({})",
                path.join(":")
            ))
        })
}

impl Ipam {
    pub fn new(name: &str, path: &[String], raw: &Value) -> CniResult<Ipam> {
        Ok(Ipam {
            plugin: find(name, path)?,
            raw: raw.clone(),
        })
    }

    /// The configuration in `version`: `cniVersion` and any `prevResult` rewritten.
    fn config_in(&self, version: &str) -> CniResult<Value> {
        let mut c = self.raw.clone();
        c["cniVersion"] = version.into();
        if let Some(prev) = c.get("prevResult").filter(|p| !p.is_null()) {
            c["prevResult"] = CniResultBody::parse(prev)?.to_value(version);
        }
        Ok(c)
    }

    fn exec(&self, command: &str, stdin: &Value) -> CniResult<Vec<u8>> {
        let name = self.plugin.display().to_string();
        let mut child = Command::new(&self.plugin)
            .env("CNI_COMMAND", command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                CniError::new(code::IO, format!("running IPAM plugin {name}"))
                    .with_details(e.to_string())
            })?;
        if let Some(mut i) = child.stdin.take() {
            // A plugin may exit without reading (VERSION): a broken pipe is its business.
            let _ = i.write_all(stdin.to_string().as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| {
            CniError::new(code::IO, format!("running IPAM plugin {name}"))
                .with_details(e.to_string())
        })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        // The delegate's own error, code and all; else what it said on stderr.
        match serde_json::from_slice::<CniError>(&out.stdout) {
            Ok(e) => Err(e),
            Err(_) => Err(CniError::new(
                code::IO,
                format!("IPAM plugin {name} {command} failed ({})", out.status),
            )
            .with_details(
                String::from_utf8_lossy(if out.stderr.is_empty() {
                    &out.stdout
                } else {
                    &out.stderr
                })
                .trim()
                .to_string(),
            )),
        }
    }

    /// The versions the delegate speaks (its VERSION answer).
    pub fn versions(&self) -> CniResult<Vec<String>> {
        let out = self.exec("VERSION", &serde_json::json!({"cniVersion": "0.4.0"}))?;
        let v: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(code::DECODE, "decoding the IPAM plugin's VERSION")
                .with_details(e.to_string())
        })?;
        Ok(v["supportedVersions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Runs `command` in `version`, or in the newest version both speak if the delegate refuses
    /// `version` as incompatible (code 1). Returns the delegate's stdout.
    fn call(&self, command: &str, version: &str) -> CniResult<Vec<u8>> {
        match self.exec(command, &self.config_in(version)?) {
            Err(e) if e.code == code::INCOMPATIBLE_VERSION => {
                let theirs = self.versions()?;
                match highest_common(&theirs) {
                    Some(v) if v != version => self.exec(command, &self.config_in(v)?),
                    _ => Err(e),
                }
            }
            r => r,
        }
    }

    /// IPAM ADD: the addresses, routes and DNS it chose.
    pub fn add(&self, version: &str) -> CniResult<CniResultBody> {
        let out = self.call("ADD", version)?;
        let v: Value = serde_json::from_slice(&out).map_err(|e| {
            CniError::new(code::DECODE, "decoding the IPAM plugin's result")
                .with_details(e.to_string())
        })?;
        CniResultBody::parse(&v)
    }

    pub fn del(&self, version: &str) -> CniResult<()> {
        self.call("DEL", version).map(drop)
    }

    pub fn check(&self, version: &str) -> CniResult<()> {
        self.call("CHECK", version).map(drop)
    }

    /// STATUS or GC, sent only to a delegate that speaks 1.1.0 or later (true when it was sent).
    pub fn status_or_gc(&self, command: &str, version: &str) -> CniResult<bool> {
        if !self.versions()?.iter().any(|v| at_least(v, "1.1.0")) {
            return Ok(false);
        }
        self.exec(command, &self.config_in(version)?).map(|_| true)
    }
}
