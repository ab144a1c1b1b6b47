//! A whole frame: its outer layer and, for a tunnel this node terminates,
//! the inner frame, parsed into a [`Scratch`] (in the kernel, the per-CPU
//! scratch map value).
//!
//! Every path of the outer parse meets the inner parse in one verifier
//! state (see [`parse_frame`]), so in the kernel a tunnel's inner parse
//! adds its cost once instead of once per outer path, and the next tunnel
//! type adds its own the same way. The kernel runs this once reading a
//! linear skb in place and, for what that leaves ([`SLOW`]), once more
//! over `bpf_skb_load_bytes`; the host once over the captured bytes.

use core::ptr::{read_volatile, write_volatile};

use super::{
    layer::Scratch,
    packet::{Bytes, Packet as _},
    parse::{MAX_LAYER_OFFSET, SLOW, Status, parse_layer},
};
use crate::{FlowKey, flow::ENCAP_NONE};

/// A plain packet: its flow is the outer layer.
pub const PLAIN: Status = 0;
/// A tunnelled packet: its flow is the inner layer, the outer one its tunnel.
pub const TUNNEL: Status = 1;
/// A tunnel whose payload is not IP: the flow is the outer one.
pub const TUNNEL_INNER_NOT_IP: Status = 2;

/// Parses `packet`, seen in `direction`, into `scratch` with reader `b`:
/// [`PLAIN`], [`TUNNEL`] or [`TUNNEL_INNER_NOT_IP`] with the flow's key and
/// layers written, else why there is no flow ([`SLOW`]: another reader
/// must try).
#[inline(always)]
pub fn parse_frame<'a, B: Bytes<'a>>(packet: &'a B::Packet, b: &B, scratch: &mut Scratch, direction: u64) -> Status {
    let key = &mut scratch.key;
    let begin = |key: &mut FlowKey| {
        clear_key(key);
        key.direction = direction as u8;
        key.ifindex = packet.ifindex();
    };
    if let Err(status) = parse_layer(packet, b, 0, 0, false, key, &mut scratch.outer, begin) {
        return status;
    }
    if scratch.outer.tunnel == ENCAP_NONE {
        return PLAIN;
    }
    move_tuple_to_outer(key, scratch.outer.tunnel_id);
    // Where every outer path, of every tunnel type, meets: where the
    // payload starts and what it is come back from map memory, which the
    // verifier does not track, and the packet is opened afresh, so no
    // packet pointer, range or offset of the outer parse is live and the
    // verifier prunes all but the first path here.
    // SAFETY: the fields were written above; volatile reads, so LLVM loads
    // them rather than forwarding the values in registers.
    let (inner_off, inner_ethertype) = unsafe {
        (
            read_volatile(&raw const scratch.outer.inner_off) as usize,
            read_volatile(&raw const scratch.outer.inner_ethertype),
        )
    };
    let Some(inner) = B::open(packet) else { return SLOW };
    if inner_off > MAX_LAYER_OFFSET {
        restore_outer_tuple(key, scratch.outer.protocol);
        return TUNNEL_INNER_NOT_IP;
    }
    match parse_layer(packet, &inner, inner_off, inner_ethertype, true, key, &mut scratch.inner, |_| {}) {
        Ok(()) => {
            key.encap = scratch.outer.tunnel;
            key.tunnel_flags = scratch.outer.tunnel_flags;
            TUNNEL
        }
        Err(SLOW) => SLOW,
        Err(_) => {
            restore_outer_tuple(key, scratch.outer.protocol);
            TUNNEL_INNER_NOT_IP
        }
    }
}

/// Zeroes the key with eight-byte stores. A struct assignment compiles to a
/// call of aya-ebpf's `memset`, which stores one byte at a time.
#[inline(always)]
fn clear_key(key: &mut FlowKey) {
    const WORDS: usize = size_of::<FlowKey>() / 8;
    const _: () = assert!(size_of::<FlowKey>() == WORDS * 8 + 4);
    let words = core::ptr::from_mut(key).cast::<u64>();
    // SAFETY: the key is the first field of the 8-aligned `Scratch` map
    // value (`repr(C)`), so its first 88 bytes are 11 aligned words and its
    // last 4 an aligned `u32`; every bit pattern is a valid `FlowKey`.
    unsafe {
        for i in 0..WORDS {
            write_volatile(words.add(i), 0);
        }
        write_volatile(words.add(WORDS).cast::<u32>(), 0);
    }
}

/// Copies the 16-byte address at `src` to `dst` (both fields of the key)
/// as two eight-byte words, and zeroes `src` when `clear`.
#[inline(always)]
fn move_addr(dst: *mut [u8; 16], src: *mut [u8; 16], clear: bool) {
    let (d, s) = (dst.cast::<u64>(), src.cast::<u64>());
    // SAFETY: the four address fields start at offsets 0, 16, 32 and 48 of
    // the key, which starts the 8-aligned scratch value (asserted in maps).
    unsafe {
        write_volatile(d, read_volatile(s));
        write_volatile(d.add(1), read_volatile(s.add(1)));
        if clear {
            write_volatile(s, 0);
            write_volatile(s.add(1), 0);
        }
    }
}

/// A tunnel was found: its tuple moves to the `outer_*` fields, and the
/// plain ones, zeroed, wait for the inner packet's.
#[inline(always)]
fn move_tuple_to_outer(key: &mut FlowKey, tunnel_id: u32) {
    move_addr(&raw mut key.outer_src_addr, &raw mut key.src_addr, true);
    move_addr(&raw mut key.outer_dst_addr, &raw mut key.dst_addr, true);
    key.outer_src_port = key.src_port;
    key.outer_dst_port = key.dst_port;
    key.outer_ip_version = key.ip_version;
    key.tunnel_id = tunnel_id;
}

/// The tunnel's payload was not IP: the plain fields get the outer tuple
/// back (a flow of the outer `protocol`: UDP, GRE, IP in IP), and the
/// tunnel fields are cleared.
#[inline(always)]
fn restore_outer_tuple(key: &mut FlowKey, protocol: u8) {
    move_addr(&raw mut key.src_addr, &raw mut key.outer_src_addr, true);
    move_addr(&raw mut key.dst_addr, &raw mut key.outer_dst_addr, true);
    key.ip_version = key.outer_ip_version;
    key.protocol = protocol;
    key.src_port = key.outer_src_port;
    key.dst_port = key.outer_dst_port;
    key.outer_ip_version = 0;
    key.outer_src_port = 0;
    key.outer_dst_port = 0;
    key.tunnel_id = 0;
    // A tunnel was only considered for a complete, unfragmented header.
    key.flags = 0;
}
