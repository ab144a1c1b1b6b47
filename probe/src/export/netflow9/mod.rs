//! NetFlow version 9 (RFC 3954) export, with the same record shapes as IPFIX:
//! timestamps as sysUptime-relative `FIRST_SWITCHED` (22) and `LAST_SWITCHED`
//! (21), and ntop's elements as field types 57472 + n, as nProbe does.

pub mod encoder;

pub use encoder::Netflow9Encoder;

#[cfg(test)]
mod tests;
