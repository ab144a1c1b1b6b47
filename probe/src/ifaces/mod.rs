//! Interfaces: names and indexes in the current network namespace, which of
//! them to watch ([`spec`]), and what the node has ([`netlink`]).

pub mod netlink;
pub mod spec;

use std::{collections::HashMap, ffi::CString};

/// The index of interface `name`, or `None` if there is none.
///
/// # Errors
/// When the kernel cannot be asked (out of file descriptors, say): that is
/// not the interface's absence, and callers must not report it as such.
pub fn index_of(name: &str) -> std::io::Result<Option<u32>> {
    let Ok(c) = CString::new(name) else { return Ok(None) };
    // SAFETY: `c` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index != 0 {
        return Ok(Some(index));
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENODEV | libc::ENXIO) => Ok(None),
        _ => Err(error),
    }
}

/// Every interface of the namespace (`if_nameindex`), with its name, or
/// the name's bytes shown escaped when it is not UTF-8: such an interface
/// cannot be attached (aya names interfaces by `&str`).
#[must_use]
pub fn all_names() -> Vec<(u32, Result<String, String>)> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns NULL or an array ending in a zero entry,
    // freed below with if_freenameindex.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut entry = list;
        while (*entry).if_index != 0 && !(*entry).if_name.is_null() {
            let bytes = std::ffi::CStr::from_ptr((*entry).if_name).to_bytes();
            let name = std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| bytes.escape_ascii().to_string());
            names.push(((*entry).if_index, name));
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}

/// The name of interface `index`, or `None` if it is gone.
#[must_use]
pub fn name_of(index: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` holds IF_NAMESIZE bytes, as if_indextoname requires.
    let ptr = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if ptr.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    // Escaped as `all_names` escapes it, so one interface has one name.
    Some(String::from_utf8(buf[..len].to_vec()).unwrap_or_else(|e| e.as_bytes().escape_ascii().to_string()))
}

/// Remembers interface names by index so a record still names an interface
/// that has since vanished.
#[derive(Default)]
pub struct NameCache {
    names: HashMap<u32, String>,
}

impl NameCache {
    /// Remembers `name` for `index` now, so records keep naming the interface
    /// after it is gone.
    pub fn remember(&mut self, index: u32, name: &str) {
        self.names.insert(index, name.to_owned());
    }

    /// Every interface known so far, by index.
    #[must_use]
    pub fn known(&self) -> Vec<(u32, String)> {
        let mut all: Vec<(u32, String)> = self.names.iter().map(|(i, n)| (*i, n.clone())).collect();
        all.sort_unstable();
        all
    }

    /// The name of `index`, looked up once and remembered; `if<index>` when the
    /// interface is gone and was never seen.
    pub fn name(&mut self, index: u32) -> &str {
        self.names.entry(index).or_insert_with(|| name_of(index).unwrap_or_else(|| format!("if{index}")))
    }
}
