//! Classification of one packet: its flow key, its layers and tunnel, and
//! what it adds to its flow. One parser, written once against [`Packet`]
//! and [`Bytes`], compiled into the kernel programs (`vxflow-ebpf`, over
//! the skb) and into the host (`vxflow replay`, over captured bytes), so
//! the two cannot drift; a differential test runs every classifier fixture
//! through both.

pub mod frame;
pub mod layer;
pub mod outcome;
pub mod packet;
pub mod parse;
pub mod tunnel;
pub mod wire;

pub use self::{
    frame::{PLAIN, TUNNEL, TUNNEL_INNER_NOT_IP, parse_frame},
    layer::{Layer, Scratch},
    outcome::{Counted, Layers, counted, layers},
    packet::{Bytes, CopiedSpan, Packet, Span},
    parse::{MALFORMED, NON_IP, SLOW, Status, VLAN_TOO_DEEP},
    wire::Wire,
};
