//! The plugin's side of the mvdp control socket: one request, one reply, with the reply's kind
//! kept so refusals map onto CNI codes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::error::{code, CniError};
use crate::daemon::api::{Reply, Request};

/// Why a request got no result.
#[derive(Debug)]
pub enum Failure {
    /// Nobody answers on the socket (or the exchange broke): the daemon is down.
    Unreachable(String),
    /// The daemon refused; `kind` as in [`Reply::kind`].
    Refused { msg: String, kind: Option<String> },
}

impl Failure {
    /// The CNI error for this failure: unreachable is `unreachable_code` (11 for ADD/GC, 50 for
    /// STATUS); a refusal by its kind: a bad request is code 7, an unusable netns 3, the rest 5.
    pub fn to_cni(&self, unreachable_code: u32) -> CniError {
        match self {
            Failure::Unreachable(m) => {
                CniError::new(unreachable_code, "the mvdp daemon is not reachable")
                    .with_details(m.clone())
            }
            Failure::Refused { msg, kind } => {
                let c = match kind.as_deref() {
                    Some("invalid") => code::INVALID_CONFIG,
                    Some("netns") => code::UNKNOWN_CONTAINER,
                    _ => code::IO,
                };
                CniError::new(c, format!("mvdp daemon: {msg}"))
            }
        }
    }
}

pub struct Daemon {
    socket: PathBuf,
}

impl Daemon {
    pub fn new(socket: &Path) -> Daemon {
        Daemon {
            socket: socket.to_path_buf(),
        }
    }

    pub fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T, Failure> {
        let at =
            |e: std::io::Error| Failure::Unreachable(format!("{}: {e}", self.socket.display()));
        let stream = UnixStream::connect(&self.socket).map_err(at)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(at)?;
        let mut line = serde_json::to_vec(req).map_err(|e| at(std::io::Error::other(e)))?;
        line.push(b'\n');
        (&stream).write_all(&line).map_err(at)?;
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).map_err(at)?;
        let reply: Reply = serde_json::from_str(&reply)
            .map_err(|e| at(std::io::Error::other(format!("unreadable reply: {e}"))))?;
        if !reply.ok {
            return Err(Failure::Refused {
                msg: reply.error.unwrap_or_else(|| "refused".into()),
                kind: reply.kind,
            });
        }
        serde_json::from_value(reply.result.unwrap_or_default())
            .map_err(|e| at(std::io::Error::other(format!("unexpected reply: {e}"))))
    }
}
