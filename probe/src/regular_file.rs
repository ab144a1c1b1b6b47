//! Reading a file the operator names (the configuration, the metadata
//! file) without letting it stall or swamp the daemon.

use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _, path::Path};

/// The text of `path`, refusing what is not a regular file (a FIFO would
/// block start and reload forever, a device never ends) and what is larger
/// than `max` bytes; `what` names the file in that error ("a config file").
///
/// # Errors
/// When the file cannot be opened or read, is not a regular file, or is
/// too large.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> std::io::Result<String> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer before the type can be checked.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} bytes, more than {what}'s limit of {max}", meta.len()),
        ));
    }
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text)?;
    Ok(text)
}
