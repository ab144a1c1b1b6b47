//! Entries of vxflow's metadata file (`[metadata] file`, `--metadata-file`),
//! as the tests write them.

use std::net::IpAddr;

/// One `[[host]]` entry naming `address` `name`, of `kind` (`pod`, `node`,
/// `host`), followed by `extra` lines (`namespace = "shop"\n`, ...).
#[must_use]
pub fn entry(address: IpAddr, name: &str, kind: &str, extra: &str) -> String {
    format!("[[host]]\naddress = \"{address}\"\nname = \"{name}\"\nkind = \"{kind}\"\n{extra}")
}
