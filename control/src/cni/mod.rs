//! mvdp as a CNI plugin: the `mvdp` binary run with `CNI_COMMAND` set (installed as `mvdp` in the
//! runtime's CNI bin dir; configurations say `"type": "mvdp"`).
//!
//! The configuration has the reference macvlan plugin's keys, so `"type": "macvlan"` can become
//! `"type": "mvdp"`; the plugin asks the mvdp daemon (its control socket) for the network (made on
//! first use, named after the CNI network) and a port in the container's netns, with the address
//! and routes the delegated IPAM plugin chose.
//!
//! - [`env`]: CNI_* and CNI_ARGS; [`config`]: the network configuration; [`version`]: versions.
//! - [`result`]: results in every version; [`error`]: CNI errors and their codes.
//! - [`ipam`]: the delegated IPAM plugin; [`daemon`]: the control socket; [`verbs`]: the verbs.

pub mod config;
pub mod daemon;
pub mod env;
pub mod error;
pub mod ipam;
pub mod result;
pub mod verbs;
pub mod version;

use env::Command;
use error::CniError;

/// What the plugin prints on stdout, and whether it succeeded (the exit status).
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    pub ok: bool,
}

/// Runs one CNI invocation: the environment through `var`, the configuration from `stdin`.
pub fn run(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    // Errors are written in the configuration's version when it is one mvdp speaks.
    let err_version = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| version::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| version::LATEST.to_string());
    match dispatch(var, stdin) {
        Ok(stdout) => Outcome { stdout, ok: true },
        Err(e) => Outcome {
            stdout: e.to_json(&err_version),
            ok: false,
        },
    }
}

fn dispatch(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<String, CniError> {
    let cmd = Command::parse(&var("CNI_COMMAND").unwrap_or_default())?;
    if cmd == Command::Version {
        return Ok(verbs::version_reply(stdin).to_string());
    }
    let env = env::read(cmd, var)?;
    let cfg = config::decode(stdin)?;
    version::check_supported(&cfg.conf.cni_version)?;
    let ctx = verbs::Ctx {
        env: &env,
        cfg: &cfg,
        var,
    };
    match cmd {
        Command::Add => ctx.add().map(|v| v.to_string()),
        Command::Del => ctx.del().map(|()| String::new()),
        Command::Check => ctx.check().map(|()| String::new()),
        Command::Status => ctx.status().map(|()| String::new()),
        Command::Gc => ctx.gc().map(|()| String::new()),
        Command::Version => unreachable!("answered above"),
    }
}
