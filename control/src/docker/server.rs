//! The driver's socket: HTTP/1 (hyper) over a unix listener, served on a thread of its own with a
//! small tokio runtime. Each call's work is a blocking daemon request, run off the reactor.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::oneshot;

use super::handlers::handle;
use crate::daemon::Requester;

/// Where dockerd looks for a plugin named `mvdp` without being told.
pub const DEFAULT_PLUGIN_SOCKET: &str = "/run/docker/plugins/mvdp.sock";

/// Docker's plugin content type.
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;

/// The running driver; [`DockerPlugin::shutdown`] (or dropping it) stops it and removes the socket.
pub struct DockerPlugin {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
}

/// Binds `socket` (its directory is made; a stale file is replaced) and serves the remote driver
/// protocol, every call going to the daemon through `daemon`.
pub fn serve(daemon: Requester, socket: &Path) -> io::Result<DockerPlugin> {
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another plugin answers there", socket.display()),
            ));
        }
        std::fs::remove_file(socket)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let listener = {
        let _g = rt.enter();
        UnixListener::bind(socket)?
    };
    let (tx, mut rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("mvdp-docker".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        acc = listener.accept() => match acc {
                            Ok((stream, _)) => {
                                let daemon = daemon.clone();
                                tokio::spawn(async move {
                                    let svc = hyper::service::service_fn(move |req| {
                                        serve_call(daemon.clone(), req)
                                    });
                                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await
                                    {
                                        tracing::debug!("docker plugin connection: {e}");
                                    }
                                });
                            }
                            Err(e) => {
                                tracing::warn!("docker plugin accept: {e}");
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            });
        })?;
    tracing::info!(socket = %socket.display(), "serving Docker's remote network driver protocol");
    Ok(DockerPlugin {
        stop: Some(tx),
        thread: Some(thread),
        socket: socket.to_path_buf(),
    })
}

async fn serve_call(
    daemon: Requester,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if req.method() != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            b"{\"Err\":\"POST only\"}".to_vec(),
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let v = serde_json::json!({"Err": format!("mvdp: reading the request: {e}")});
            return Ok(reply(StatusCode::BAD_REQUEST, v.to_string().into_bytes()));
        }
    };
    tracing::debug!(call = %path, body = %String::from_utf8_lossy(&body), "docker");
    let v = tokio::task::spawn_blocking(move || handle(&daemon, &path, &body))
        .await
        .unwrap_or_else(|e| serde_json::json!({"Err": format!("mvdp: the call failed: {e}")}));
    Ok(reply(StatusCode::OK, v.to_string().into_bytes()))
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

impl DockerPlugin {
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for DockerPlugin {
    fn drop(&mut self) {
        self.stop_now();
    }
}
