//! The control socket: a unix stream socket (0600), one JSON request per line, one reply per line.
//! Connections are served on their own threads; requests go through a channel to the one control
//! thread that owns the [`Daemon`], which also polls the parents' carrier between requests.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::api::{Reply, Request, MAX_REQUEST_BYTES};
use super::engine::{Daemon, DaemonConfig, DaemonError};
use mvdp_switch::plane::Dataplane;

/// How often the parents' carrier (and the ports' veths) are checked.
pub const CARRIER_POLL: Duration = Duration::from_millis(200);

/// An idle client is dropped after this long, so stuck clients cannot pile up threads.
const CLIENT_IDLE: Duration = Duration::from_secs(60);

enum Msg {
    Request(Request, mpsc::Sender<Reply>),
    Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("another mvdp daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    #[error("control socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// A running daemon. [`Server::shutdown`] (or dropping it) stops it cleanly.
pub struct Server {
    tx: mpsc::Sender<Msg>,
    stop: Arc<AtomicBool>,
    control: Option<JoinHandle<()>>,
    acceptor: Option<JoinHandle<()>>,
    socket: PathBuf,
}

/// Refuses a socket another daemon answers on (call before building a dataplane, which may itself
/// clash with the running daemon's); a stale file is left for [`serve`] to replace.
pub fn ensure_no_daemon_at(socket: &Path) -> Result<(), ServeError> {
    if socket.exists() && UnixStream::connect(socket).is_ok() {
        return Err(ServeError::AlreadyRunning(socket.to_path_buf()));
    }
    Ok(())
}

/// Restores the saved state, binds `socket` and starts serving.
pub fn serve<D: Dataplane + 'static>(
    dp: D,
    cfg: DaemonConfig,
    socket: &Path,
) -> Result<Server, ServeError> {
    let sock_err = |e: io::Error| ServeError::Socket {
        path: socket.to_path_buf(),
        source: e,
    };
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(sock_err)?;
    }
    ensure_no_daemon_at(socket)?;
    if socket.exists() {
        // Left by a daemon that died: nobody answers on it.
        std::fs::remove_file(socket).map_err(sock_err)?;
    }
    let mut daemon = Daemon::new(dp, cfg)?;
    let listener = UnixListener::bind(socket).map_err(sock_err)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    tracing::info!(socket = %socket.display(), "listening");

    let (tx, rx) = mpsc::channel::<Msg>();
    let stop = Arc::new(AtomicBool::new(false));
    let control = std::thread::Builder::new()
        .name("mvdp-control".into())
        .spawn(move || {
            // The system is polled every CARRIER_POLL, not after every request: on a dense host a
            // poll reads a thousand links, which a burst of requests should not wait behind.
            let mut next_poll = std::time::Instant::now() + CARRIER_POLL;
            loop {
                let wait = next_poll.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(Msg::Request(req, reply)) => {
                        tracing::debug!(?req, "request");
                        let _ = reply.send(daemon.handle(req));
                    }
                    Ok(Msg::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                if std::time::Instant::now() >= next_poll {
                    daemon.poll();
                    next_poll = std::time::Instant::now() + CARRIER_POLL;
                }
            }
            daemon.shutdown();
        })
        .map_err(sock_err)?;
    let acceptor = {
        let tx = tx.clone();
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("mvdp-accept".into())
            .spawn(move || accept_loop(listener, tx, stop))
            .map_err(sock_err)?
    };
    Ok(Server {
        tx,
        stop,
        control: Some(control),
        acceptor: Some(acceptor),
        socket: socket.to_path_buf(),
    })
}

/// Puts requests to the control thread from inside the daemon's process (the Docker driver's way
/// in: the same queue, the same engine, as the control socket's clients).
#[derive(Clone)]
pub struct Requester(mpsc::Sender<Msg>);

impl Requester {
    pub fn call(&self, req: Request) -> Reply {
        let (rtx, rrx) = mpsc::channel();
        if self.0.send(Msg::Request(req, rtx)).is_err() {
            return Reply::error("the daemon is shutting down");
        }
        rrx.recv()
            .unwrap_or_else(|_| Reply::error("the daemon is shutting down"))
    }
}

/// Accepts clients, blocking in accept(2) so a request is picked up at once; `stop_now` wakes it
/// with a connection of its own.
fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Msg>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => break,
            Ok((stream, _)) => {
                let tx = tx.clone();
                let _ = std::thread::Builder::new()
                    .name("mvdp-client".into())
                    .spawn(move || {
                        if let Err(e) = serve_client(stream, tx) {
                            tracing::debug!("client: {e}");
                        }
                    });
            }
            Err(e) => {
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn write_reply(w: &mut UnixStream, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

fn serve_client(stream: UnixStream, tx: mpsc::Sender<Msg>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_IDLE))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r
            .by_ref()
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_REQUEST_BYTES {
            // The rest of the line is unread: no way to find the next request, so say why and hang up.
            write_reply(
                &mut w,
                &Reply::error(format!(
                    "request larger than {MAX_REQUEST_BYTES} bytes; closing the connection"
                )),
            )?;
            return Ok(());
        }
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let reply = match serde_json::from_slice::<Request>(line) {
            Err(e) => Reply::error(format!("malformed request: {e}")),
            Ok(req) => {
                let (rtx, rrx) = mpsc::channel();
                if tx.send(Msg::Request(req, rtx)).is_err() {
                    Reply::error("the daemon is shutting down")
                } else {
                    rrx.recv()
                        .unwrap_or_else(|_| Reply::error("the daemon is shutting down"))
                }
            }
        };
        write_reply(&mut w, &reply)?;
    }
}

impl Server {
    pub fn requester(&self) -> Requester {
        Requester(self.tx.clone())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// False once the control thread has ended (after a shutdown, or if it died).
    pub fn is_running(&self) -> bool {
        self.control.as_ref().is_some_and(|c| !c.is_finished())
    }

    /// Stops accepting, releases the dataplane (ports removed, parents detached), saves the state and
    /// removes the socket file. Requests already queued are answered first.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            // Wake the acceptor out of accept(2); if that cannot be done, leave it be rather than
            // wait forever (it only holds the listener, which goes with the process).
            if UnixStream::connect(&self.socket).is_ok() {
                let _ = a.join();
            }
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}
