//! `mvdp` as a CNI plugin: with `CNI_COMMAND` set the binary reads the network configuration on
//! stdin, acts (see `mvdp_control::cni`) and prints the CNI result or error on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

use mvdp_control::cni::{self, error::code, error::CniError, Outcome};

/// Whether this invocation is a container runtime calling the plugin.
pub fn invoked_as_plugin() -> bool {
    std::env::var_os("CNI_COMMAND").is_some()
}

pub fn run() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    // VERSION needs nothing from stdin.
    let version = std::env::var("CNI_COMMAND").as_deref() == Ok("VERSION");
    let out = match read {
        Err(e) if !version => Outcome {
            stdout: CniError::new(code::IO, format!("reading stdin: {e}"))
                .to_json(cni::version::LATEST),
            ok: false,
        },
        _ => cni::run(&|k| std::env::var(k).ok(), &stdin),
    };
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    if out.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
