//! The client side of the control socket, used by every `mvdp` command except `daemon`.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::api::{Reply, Request};

/// Where the daemon listens unless told otherwise (`--socket`, `MVDP_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/mvdp/mvdp.sock";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("mvdp daemon not running at {0} (start it with `mvdp daemon`, or point --socket / MVDP_SOCKET at it)")]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: the control socket is root-only")]
    PermissionDenied(PathBuf),
    #[error("talking to the daemon at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The daemon refused the request; the message is its reason.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request and returns the daemon's `result`, or its error as [`ClientError::Refused`].
pub fn call(socket: &Path, req: &Request) -> Result<serde_json::Value, ClientError> {
    let path = socket.to_path_buf();
    let io_err = |e: io::Error| ClientError::Io {
        path: path.clone(),
        source: e,
    };
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(path.clone())
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.clone()),
        _ => io_err(e),
    })?;
    // Port creation runs ethtool and netlink; generous, but a wedged daemon must not hang scripts.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io_err)?;
    let mut line = serde_json::to_vec(req).map_err(|e| io_err(io::Error::other(e)))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io_err)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(io_err)?;
    if reply.is_empty() {
        return Err(io_err(io::Error::other("the daemon closed the connection")));
    }
    let reply: Reply = serde_json::from_str(&reply).map_err(|e| io_err(io::Error::other(e)))?;
    if reply.ok {
        Ok(reply.result.unwrap_or(serde_json::Value::Null))
    } else {
        Err(ClientError::Refused(
            reply.error.unwrap_or_else(|| "request refused".into()),
        ))
    }
}
