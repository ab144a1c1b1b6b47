//! Userspace-only glue: `aya::Pod` for the shared structs.

use crate::{DatapathStats, ExportTuple, FallbackRecord, FlowKey, FlowStats};

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
