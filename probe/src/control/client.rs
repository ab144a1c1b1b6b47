//! `vxflow ctl`: sends one request to a running vxflow and prints the answer.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach vxflow at {path}: is it running, and are you root or its user? (the socket is set by control.socket)"
    )]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to vxflow at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("vxflow at {path} sent an answer this ctl does not understand (different versions?)")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Sends `request` to the vxflow listening on `path` and returns its answer.
///
/// # Errors
/// When the socket cannot be reached or the answer cannot be read.
pub fn query(path: &Path, request: &Request) -> Result<Response, ClientError> {
    let p = || path.display().to_string();
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect { path: p(), source })?;
    let io = |source| ClientError::Io { path: p(), source };
    stream.set_read_timeout(Some(Duration::from_mins(1))).map_err(io)?;
    let mut line = serde_json::to_string(request).unwrap_or_default();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(&answer).map_err(|source| ClientError::Decode { path: p(), source })
}
