//! Capture files as anyone writes them: any bytes, read as pcap or pcapng
//! (a valid header is put in front half the time, so the fuzzer gets past
//! the magic), every packet classified by the host build of the kernel's
//! classifier. Reading ends with a packet, a clean end or an error; never
//! a panic, and never a packet longer than the largest kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxflow::{
    datapath::TunnelDecoding,
    replay::{
        capture::{Capture, MAX_PACKET},
        classify::{Captured, Settings, classify},
    },
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mut input = Vec::new();
    match selector % 4 {
        // pcap, nanoseconds, Ethernet or cooked v1 / v2 or raw IP.
        0 | 1 => {
            input.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
            input.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0]);
            let link: u32 = [1, 113, 276, 101][usize::from(selector >> 2) % 4];
            input.extend_from_slice(&link.to_le_bytes());
        }
        // pcapng: a section header, then the fuzzer's blocks.
        2 => {
            input.extend_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0]);
            input.extend_from_slice(&[0xff; 8]);
            input.extend_from_slice(&[28, 0, 0, 0]);
        }
        _ => {}
    }
    input.extend_from_slice(rest);
    let Ok(mut capture) = Capture::from_reader("fuzz".into(), Box::new(std::io::Cursor::new(input))) else { return };
    let tunnels = TunnelDecoding::new(vec![4789, 8472], vec![6081], true, true).unwrap();
    let settings = Settings::new(&tunnels, true);
    for _ in 0..10_000 {
        match capture.next_packet() {
            Ok(Some(p)) => {
                // At most the largest packet kept, behind the Ethernet
                // header a cooked or raw packet is given.
                assert!(p.frame.len() <= MAX_PACKET + 14);
                let packet = Captured {
                    frame: &p.frame,
                    len: p.wire_len,
                    vlan: None,
                    ifindex: 1,
                    gso: (0, 0),
                    settings: &settings,
                };
                let _ = classify(&packet, p.direction);
            }
            Ok(None) | Err(_) => return,
        }
    }
});
