//! `vxflow replay` throughput on the VXLAN mix: a capture of 2,000,000
//! packets (VXLAN on 8472 and 4789 carrying TCP and UDP between 8,000 pod
//! pairs, and a fifth of plain node traffic), replayed as fast as it can be
//! read, on one core, with JSON records to /dev/null. The reference,
//! measured in the same run on the same file: reading it alone (pcap
//! parsing and the copy of each packet, nothing classified). Memory: the
//! heap's peak during the replay against the file's size.
//! No root. `cargo bench -p vxflow --bench replay`.

use std::{io::Write as _, path::PathBuf, time::Instant};

use etherparse::PacketBuilder;
use vxflow::{
    config::{ConfigSource, Overrides},
    replay::{Speed, replay},
};

const PACKETS: u32 = 2_000_000;
const PAIRS: u32 = 10_000;

/// The mix's `i`th packet.
fn frame(i: u32) -> Vec<u8> {
    let pair = i % PAIRS;
    let pod_a = [10, 244, (pair >> 8) as u8, (pair & 0xff) as u8];
    let pod_b = [10, 245, (pair >> 8) as u8, (pair & 0xff) as u8];
    let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut inner = Vec::new();
    match i % 5 {
        0 | 1 => eth().ipv4(pod_a, pod_b, 64).tcp(40000, 80, i, 64240).ack(1).write(&mut inner, &[0x42; 200]).unwrap(),
        2 | 3 => eth().ipv4(pod_a, pod_b, 64).udp(5353, 53).write(&mut inner, &[0x55; 100]).unwrap(),
        _ => {
            // Plain node traffic, not tunnelled.
            let mut f = Vec::new();
            eth()
                .ipv4([192, 168, 56, 11], [192, 168, 56, 12], 64)
                .tcp(22, 50000, i, 64240)
                .write(&mut f, &[0; 64])
                .unwrap();
            return f;
        }
    }
    let port = if i.is_multiple_of(2) { 8472 } else { 4789 };
    vxflow_testkit::packets::vxlan(
        &[192, 168, 56, 11],
        &[192, 168, 56, 12],
        40000 + (pair % 1000) as u16,
        port,
        0x08,
        1,
        &inner,
    )
}

fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 has no preconditions.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

fn thread_cpu_s() -> f64 {
    // SAFETY: a zeroed timespec is valid and clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) }, 0);
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let s = ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
    s
}

fn main() {
    let dir = std::env::temp_dir().join(format!("vxflow-replay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("mix.pcap");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        out.write_all(&vxflow_testkit::pcap::header(1)).unwrap();
        let t0 = 1_767_225_600_000_000_000u64;
        for i in 0..PACKETS {
            // 1 µs apart: two seconds of capture.
            out.write_all(&vxflow_testkit::pcap::record(t0 + u64::from(i) * 1000, &frame(i))).unwrap();
        }
    }
    let file_bytes = std::fs::metadata(&path).unwrap().len();
    // Warm the page cache, then the reference: the file read and parsed,
    // each packet copied out, nothing classified.
    let read_only = || {
        let started = thread_cpu_s();
        let mut capture = vxflow::replay::capture::Capture::open(&path).unwrap();
        let mut n = 0u64;
        while let Some(p) = capture.next_packet().unwrap() {
            n += p.frame.len() as u64;
        }
        assert!(n > 0);
        thread_cpu_s() - started
    };
    read_only();
    let config = ConfigSource {
        file: None,
        overrides: Overrides {
            interfaces: vec!["auto".into()],
            json: Some("/dev/null".into()),
            no_metrics: true,
            no_control: true,
            ..Overrides::default()
        },
    }
    .load()
    .unwrap();
    println!(
        "replay of the VXLAN mix: {PACKETS} packets ({} MB) of {} pod pairs and node traffic, one core, median of 5 rounds",
        file_bytes / 1_000_000,
        PAIRS * 4 / 5
    );
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let reference = read_only();
        let before = heap_bytes();
        // The heap's peak during the replay, sampled every millisecond.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    peak = peak.max(heap_bytes());
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                peak
            })
        };
        let wall = Instant::now();
        let started = thread_cpu_s();
        let summary = replay(&config, std::slice::from_ref(&path), Speed::AsFast, true).unwrap();
        let cpu = thread_cpu_s() - started;
        let wall = wall.elapsed().as_secs_f64();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let held = watcher.join().unwrap().saturating_sub(before);
        assert_eq!(summary.packets, u64::from(PACKETS));
        assert_eq!(summary.accounted, u64::from(PACKETS));
        rounds.push((cpu, reference, wall, held, summary.records));
    }
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (cpu, reference, wall, held, records) = rounds[2];
    let mut ratios: Vec<f64> = rounds.iter().map(|r| r.0 / r.1).collect();
    ratios.sort_by(f64::total_cmp);
    let pps = f64::from(PACKETS) / cpu;
    println!(
        "  replay: {:.2} million packets a second ({:.0} ns a packet, {cpu:.2} s CPU, {wall:.2} s wall), {records} records",
        pps / 1e6,
        cpu * 1e9 / f64::from(PACKETS)
    );
    println!(
        "  reading alone: {:.0} ns a packet; replay / reading: x{:.2} (median of the rounds' ratios)",
        reference * 1e9 / f64::from(PACKETS),
        ratios[2]
    );
    println!(
        "  heap at its peak during the replay: {} KB, against a {} MB capture ({records} flows)",
        held / 1000,
        file_bytes / 1_000_000,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
