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
    #[error("control socket {path}: {what}")]
    Io {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The bound socket; the file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
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
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse { path: path.display().to_string() });
        }
        // Left by a vxflow that did not exit cleanly.
        std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
    }
    let listener = UnixListener::bind(path).map_err(io("binding"))?;
    let socket = ControlSocket { path: path.to_owned() };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io("setting mode 0600"))?;
    tracing::info!(path = %path.display(), "control socket ready (vxflow ctl)");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let queries = queries.clone();
                    tokio::spawn(async move { answer(stream, &queries).await });
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
