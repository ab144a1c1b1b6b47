//! Userspace-only glue: `aya::Pod` for the shared structs, and hashing the
//! flow key.

use core::hash::{Hash, Hasher};

use crate::{DatapathStats, ExportTuple, FallbackRecord, FlowKey, FlowStats};

/// The fields' sizes: with them adding up to the struct's, `FlowKey` has no
/// padding the compiler could leave uninitialised, so its bytes are its value.
const FLOW_KEY_FIELDS: usize = 4 * 16 + 2 * 4 + 5 * 2 + 7 + 3;
const _: () = assert!(size_of::<FlowKey>() == FLOW_KEY_FIELDS);

impl FlowKey {
    /// The key as the kernel's map stores and compares it.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; FLOW_KEY_FIELDS] {
        // SAFETY: `FlowKey` is `repr(C)` with no padding (checked above) and
        // alignment at least 1, so its bytes are initialised and the
        // reference lives no longer than `self`.
        unsafe { &*core::ptr::from_ref(self).cast::<[u8; FLOW_KEY_FIELDS]>() }
    }
}

/// The key's bytes in one write: a keyed hash over 92 bytes at once is about
/// twice as fast as one write per field, and the cache hashes every delta.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

// SAFETY: plain `#[repr(C)]` data with explicit padding; every bit pattern is
// a valid value.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowStats {}
// SAFETY: as above.
unsafe impl aya::Pod for DatapathStats {}
// SAFETY: as above.
unsafe impl aya::Pod for FallbackRecord {}
// SAFETY: as above.
unsafe impl aya::Pod for ExportTuple {}
// SAFETY: as above.
unsafe impl aya::Pod for crate::NonIpSlot {}
