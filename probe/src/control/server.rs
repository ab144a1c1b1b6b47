//! The control socket's listening side, in the daemon.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{QuerySender, Request, Response, ask};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 4096;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the drain loop may take to answer (`expire-all` exports).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: another vxflow answers there; stop it, or give this one another control.socket")]
    InUse { path: String },
    #[error(
        "control socket {path}: a file that is not a socket is in the way; vxflow removes only a stale socket of its own, so move it or set control.socket elsewhere"
    )]
    NotASocket { path: String },
    #[error("control socket {path}: {what}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Connections answered at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;

/// The bound socket; the file is removed when this is dropped, if it is
/// still the one bound (same device and inode).
pub struct ControlSocket {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if self.identity.is_some() && identity(&self.path) == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Binds `path` (mode 0600) and serves it on the current runtime, passing
/// requests to the drain loop through `queries`.
///
/// # Errors
/// When another vxflow answers on `path`, or it cannot be bound.
pub fn serve(path: &Path, queries: QuerySender) -> Result<ControlSocket, ControlError> {
    let io = |what| {
        let path = path.display().to_string();
        move |source| ControlError::Io { path, what, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating its directory"))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt as _;
            if !meta.file_type().is_socket() {
                return Err(ControlError::NotASocket { path: path.display().to_string() });
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(ControlError::InUse { path: path.display().to_string() }),
                // Nobody listens: left by a vxflow that did not exit cleanly.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
                }
                Err(e) => return Err(io("checking whether another vxflow answers there")(e)),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspecting the path")(e)),
    }
    let listener = UnixListener::bind(path).map_err(io("binding"))?;
    let socket = ControlSocket { path: path.to_owned(), identity: identity(path) };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io("setting mode 0600"))?;
    tracing::info!(path = %path.display(), "control socket ready (vxflow ctl)");
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else { return };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let queries = queries.clone();
                    tokio::spawn(async move {
                        answer(stream, &queries).await;
                        drop(slot);
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(socket)
}

/// Serves one connection: one request line, one response line.
async fn answer(mut stream: UnixStream, queries: &QuerySender) {
    // The socket's mode already keeps others out; this also holds when the
    // directory or the mode were loosened by hand.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 || cred.uid() == me => {}
        Ok(cred) => {
            tracing::warn!(uid = cred.uid(), pid = ?cred.pid(), "control request refused: only root or the service user");
            let denied = Response::Error("permission denied: only root or the vxflow service user".into());
            respond(&mut stream, &denied).await;
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "control request refused: cannot read the peer's credentials");
            return;
        }
    }
    let (read, mut write) = stream.split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let response = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => {
                tracing::debug!(?request, "control request");
                ask(queries, request, ANSWER_TIMEOUT).await.unwrap_or_else(|why| Response::Error(why.into()))
            }
            Err(error) => Response::Error(format!("bad request: {error}")),
        },
        Ok(Err(error)) => Response::Error(format!("reading the request: {error}")),
        Err(_) => Response::Error("no request within 5 s".into()),
    };
    respond(&mut write, &response).await;
}

async fn respond(stream: &mut (impl AsyncWrite + Unpin), response: &Response) {
    let mut text = serde_json::to_string(response).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    if let Err(error) = stream.write_all(text.as_bytes()).await {
        tracing::debug!(%error, "control client went away before the answer");
    }
    let _ = stream.shutdown().await;
}
