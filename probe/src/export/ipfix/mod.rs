//! IPFIX (RFC 7011) export: information elements, templates per record shape,
//! and the message encoder. The inner tuple goes in the standard elements;
//! the VNI and the outer tuple in elements the best collectors decode
//! (`fields.rs` lists them; the README's "Sending flows to collectors" says
//! which collector shows what).

pub mod encoder;

pub use crate::export::message::Encoded;
pub use crate::export::shape::Shape;
pub use encoder::{EncodeError, IpfixEncoder, restamp};

#[cfg(test)]
mod tests;
