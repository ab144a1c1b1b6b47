//! IPFIX template records (RFC 7011 3.4.1) for each shape.

use crate::export::shape::Shape;

/// Appends the template record for `shape` (RFC 7011 3.4.1): id, field
/// count, then each field specifier with the enterprise bit and number where
/// the element has one.
pub fn write_template_record(shape: Shape, out: &mut Vec<u8>) {
    let fields = shape.fields();
    out.extend_from_slice(&shape.template_id().to_be_bytes());
    out.extend_from_slice(&u16::try_from(fields.len()).unwrap_or(u16::MAX).to_be_bytes());
    for f in fields {
        // The enterprise bit (RFC 7011 3.2) says a PEN follows the length.
        let enterprise_bit = if f.enterprise().is_some() { 0x8000 } else { 0 };
        out.extend_from_slice(&(enterprise_bit | f.id()).to_be_bytes());
        out.extend_from_slice(&f.width().to_be_bytes());
        if let Some(pen) = f.enterprise() {
            out.extend_from_slice(&pen.to_be_bytes());
        }
    }
}
