//! `vxflow replay` on captures made here: every classifier fixture gives
//! the record the kernel tests expect; one set of packets written as pcap,
//! pcapng (nanosecond and microsecond interfaces) and Linux cooked v1 and
//! v2 gives the same records; packet times drive the cache (an idle
//! timeout between packets, the exported start and end the packets'
//! times), a time going backwards is counted; standard input works; a
//! truncated file and one that is not a capture fail clearly. No root.

use std::{io::Write as _, net::IpAddr, path::Path, process::Command};

use vxflow_common::FlowKey;
use vxflow_testkit::{
    TempDir,
    names::entry,
    packets::{self, Expect},
    pcap::capture as pcap,
    probe::{Record, binary},
};

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let total = u32::try_from(12 + body.len()).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&total.to_le_bytes());
    out
}

/// A pcapng of `frames` on one Ethernet interface whose time unit is
/// 10^-`resol` s (`None`: no option, so microseconds).
fn pcapng(frames: &[(u64, Vec<u8>)], resol: Option<u8>) -> Vec<u8> {
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut out = block(0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    if let Some(r) = resol {
        idb.extend_from_slice(&9u16.to_le_bytes());
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&[r, 0, 0, 0]);
        idb.extend_from_slice(&[0; 4]);
    }
    out.extend(block(1, &idb));
    let unit = 10u64.pow(9 - u32::from(resol.unwrap_or(6)));
    for (ns, frame) in frames {
        let ts = ns / unit;
        let len = u32::try_from(frame.len()).unwrap();
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&u32::try_from(ts >> 32).unwrap().to_le_bytes());
        epb.extend_from_slice(&u32::try_from(ts & 0xffff_ffff).unwrap().to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(frame);
        out.extend(block(6, &epb));
    }
    out
}

/// The frame as a Linux cooked (v1) capture holds it: `outgoing` or not.
fn cooked(frame: &[u8], outgoing: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(if outgoing { 4u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&frame[6..12]);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&frame[12..]);
    out
}

/// The frame as a Linux cooked v2 capture holds it, on interface `ifindex`.
fn cooked2(frame: &[u8], ifindex: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&frame[12..14]);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ifindex.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.push(0);
    out.push(6);
    out.extend_from_slice(&frame[6..12]);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&frame[14..]);
    out
}

/// Runs `vxflow replay` on `files` with `args`; its records and stderr.
fn replay(dir: &TempDir, files: &[&Path], args: &[&str]) -> (bool, Vec<Record>, String) {
    let json = dir.join("records.json");
    let _ = std::fs::remove_file(&json);
    let out = Command::new(binary())
        .arg("replay")
        .args(files)
        .args(["--json", json.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let records = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    (out.status.success(), records, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn addr(a: [u8; 16], version: u8) -> IpAddr {
    if version == 4 { IpAddr::from([a[0], a[1], a[2], a[3]]) } else { IpAddr::from(a) }
}

fn check_key(r: &Record, key: &FlowKey) -> Result<(), String> {
    let want = (addr(key.src_addr, key.ip_version), addr(key.dst_addr, key.ip_version), key.protocol);
    let got = (r.src_addr, r.dst_addr, r.protocol_number);
    if got != want {
        return Err(format!("tuple {got:?}, want {want:?}"));
    }
    // A port of 0 (a later fragment, a cut header) is left out of JSON.
    if matches!(key.protocol, 6 | 17)
        && (r.src_port.unwrap_or(0), r.dst_port.unwrap_or(0)) != (key.src_port, key.dst_port)
    {
        return Err(format!("ports {:?} {:?}", r.src_port, r.dst_port));
    }
    if key.encap != 0 {
        let outer = (addr(key.outer_src_addr, key.outer_ip_version), addr(key.outer_dst_addr, key.outer_ip_version));
        // A tunnel without an id (IP in IP, GRE without a key) has none in JSON.
        if (r.outer_src_addr, r.outer_dst_addr) != (Some(outer.0), Some(outer.1))
            || r.tunnel_id.unwrap_or(0) != key.tunnel_id
        {
            return Err(format!("tunnel {:?} {:?} {:?}", r.outer_src_addr, r.outer_dst_addr, r.tunnel_id));
        }
    } else if r.tunnel.is_some() {
        return Err(format!("a tunnel where none is: {:?}", r.tunnel));
    }
    Ok(())
}

/// Each fixture alone: the record the kernel test expects of it (tuple,
/// tunnel, packets, bytes, outer bytes), or none for a frame in no flow.
#[test]
fn every_fixture_replays_to_the_record_the_kernel_gives() {
    let dir = TempDir::new("replayfix");
    let mut failures = Vec::new();
    let cases: Vec<_> = packets::cases().into_iter().filter(|c| c.gso.is_none()).collect();
    for case in &cases {
        let path = dir.join(&format!("{}.pcap", case.name));
        std::fs::write(&path, pcap(&[(1_767_225_600_000_000_000, case.frame.clone())], 1)).unwrap();
        let (ok, records, stderr) = replay(&dir, &[&path], &[]);
        if !ok {
            failures.push(format!("{}: failed: {stderr}", case.name));
            continue;
        }
        match &case.expect {
            Expect::Flow { key, packets, bytes, outer_bytes, .. } => {
                let [r] = &records[..] else {
                    failures.push(format!("{}: {} records", case.name, records.len()));
                    continue;
                };
                if let Err(e) = check_key(r, key) {
                    failures.push(format!("{}: {e}", case.name));
                }
                let outer = if *outer_bytes == 0 { None } else { Some(*outer_bytes) };
                if (r.packets, r.bytes, r.outer_bytes) != (*packets, *bytes, outer) {
                    failures.push(format!("{}: counts {} {} {:?}", case.name, r.packets, r.bytes, r.outer_bytes));
                }
                if r.start != "2026-01-01T00:00:00.000Z" || r.end != r.start || r.end_reason != "forced_end" {
                    failures.push(format!("{}: times {} {} {}", case.name, r.start, r.end, r.end_reason));
                }
            }
            Expect::NoFlow { bucket, .. } => {
                if !records.is_empty() {
                    failures.push(format!("{}: records where none: {records:?}", case.name));
                }
                if !stderr.contains(&format!("{} 1", bucket.name())) {
                    failures.push(format!(
                        "{}: the summary does not skip it as {}: {stderr}",
                        case.name,
                        bucket.name()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} fixtures:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The same VXLAN and plain packets as pcap, pcapng (nanosecond and
/// microsecond units), Linux cooked v1 and v2, and from standard input:
/// the same records, at the same times.
#[test]
fn every_format_gives_the_same_records() {
    let dir = TempDir::new("replayfmt");
    let t0 = 1_767_225_600_123_456_000u64;
    let vxlan = packets::named("vxlan-8472-ipv4-udp").frame;
    let plain = packets::named("ipv4-tcp-syn").frame;
    let frames: Vec<(u64, Vec<u8>)> =
        (0..6u64).map(|i| (t0 + i * 250_000_000, if i % 2 == 0 { vxlan.clone() } else { plain.clone() })).collect();
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let files = [
        write("a.pcap", pcap(&frames, 1)),
        write("b.pcapng", pcapng(&frames, Some(9))),
        write("c.pcapng", pcapng(&frames, None)),
        write("d.pcap", pcap(&frames.iter().map(|(t, f)| (*t, cooked(f, false))).collect::<Vec<_>>(), 113)),
        write("e.pcap", pcap(&frames.iter().map(|(t, f)| (*t, cooked2(f, 7))).collect::<Vec<_>>(), 276)),
    ];
    let shape = |records: &[Record]| {
        let mut v: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.src_addr,
                    r.dst_addr,
                    r.src_port,
                    r.dst_port,
                    r.tunnel_id,
                    r.packets,
                    r.bytes,
                    r.start.clone(),
                    r.end.clone(),
                )
            })
            .collect();
        v.sort_by_key(|x| format!("{x:?}"));
        v
    };
    let (ok, first, stderr) = replay(&dir, &[&files[0]], &[]);
    assert!(ok, "{stderr}");
    assert_eq!(first.iter().map(|r| r.packets).sum::<u64>(), 6, "{first:#?}");
    assert!(
        first.iter().any(|r| r.start == "2026-01-01T00:00:00.123Z" && r.end == "2026-01-01T00:00:01.123Z"),
        "{first:#?}"
    );
    for f in &files[1..] {
        let (ok, records, stderr) = replay(&dir, &[f], &[]);
        assert!(ok, "{}: {stderr}", f.display());
        assert_eq!(shape(&records), shape(&first), "{}", f.display());
    }
    // Standard input.
    let json = dir.join("stdin.json");
    let mut child = Command::new(binary())
        .args(["replay", "-", "--json", json.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&files[1]).unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<Record> =
        std::fs::read_to_string(&json).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(shape(&records), shape(&first), "from standard input");
}

/// Packet time, not the wall clock, ends flows: 20 s between two packets of
/// one flow is past the 15 s inactive timeout, so two records, each at its
/// packet's time, the first idle; a packet stamped earlier than the one
/// before it is counted and replayed at the later time.
#[test]
fn packet_times_drive_the_cache() {
    let dir = TempDir::new("replaytime");
    let t0 = 1_767_225_600_000_000_000u64;
    let syn = packets::named("ipv4-tcp-syn").frame;
    let frames = vec![(t0, syn.clone()), (t0 + 20_000_000_000, syn.clone()), (t0 + 19_000_000_000, syn)];
    let path = dir.join("time.pcap");
    std::fs::write(&path, pcap(&frames, 1)).unwrap();
    let (ok, records, stderr) = replay(&dir, &[&path], &["--inactive-timeout", "15s"]);
    assert!(ok, "{stderr}");
    let got: Vec<(&str, &str, u64, &str)> =
        records.iter().map(|r| (r.start.as_str(), r.end.as_str(), r.packets, r.end_reason.as_str())).collect();
    assert_eq!(
        got,
        [
            ("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", 1, "idle_timeout"),
            ("2026-01-01T00:00:20.000Z", "2026-01-01T00:00:20.000Z", 2, "forced_end"),
        ],
        "{stderr}"
    );
    assert!(stderr.contains("1 backwards in time"), "{stderr}");
}

/// A capture cut inside a packet gives what came before and fails naming
/// the cut; a file that is not a capture, a directory, or nothing at all
/// fail at once with what they are.
#[test]
fn truncated_and_foreign_files_fail_clearly() {
    let dir = TempDir::new("replaybad");
    let syn = packets::named("ipv4-tcp-syn").frame;
    let whole = pcap(&[(1_767_225_600_000_000_000, syn.clone()), (1_767_225_601_000_000_000, syn)], 1);
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 10]).unwrap();
    let (ok, records, stderr) = replay(&dir, &[&cut], &[]);
    assert!(!ok, "{stderr}");
    assert_eq!(records.iter().map(|r| r.packets).sum::<u64>(), 1, "the packet before the cut stands");
    assert!(stderr.contains("is cut short after 1 packets"), "{stderr}");
    // Lengths that lie: a record longer than the file, longer than the snap
    // length, a snap length of 4 GiB, a pcapng block of 2 GiB.
    let mut long = pcap(&[], 1);
    long.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    long.extend_from_slice(&[0; 64]);
    let mut past_snap = pcap(&[], 1);
    past_snap.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00]);
    past_snap.extend_from_slice(&vec![0; 70_000]);
    let mut huge_snap = pcap(&[], 1);
    huge_snap[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut block = pcapng(&[], Some(9));
    block.extend_from_slice(&6u32.to_le_bytes());
    block.extend_from_slice(&0x7fff_fff0_u32.to_le_bytes());
    block.extend_from_slice(&[0; 64]);
    for (name, bytes, want) in [
        ("long.pcap", long, "is cut short after 0 packets"),
        ("past-snap.pcap", past_snap, "incl_len > snap_len"),
        ("huge-snap.pcap", huge_snap, "a snap length of 4294967295 bytes"),
        ("block.pcapng", block, "is cut short after 0 packets"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let (ok, records, stderr) = replay(&dir, &[&path], &[]);
        assert!(!ok && records.is_empty() && stderr.contains(want), "{name}: {stderr}");
    }
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello, this is not a capture\n").unwrap();
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    for (path, want) in [
        (text.as_path(), "is not a packet capture (pcap or pcapng): it starts with 68 65 6c 6c"),
        (empty.as_path(), "is not a packet capture (pcap or pcapng): it starts with nothing"),
        (Path::new("/"), "not a regular file or a FIFO"),
        (Path::new("/nonexistent.pcap"), "No such file"),
    ] {
        let (ok, records, stderr) = replay(&dir, &[path], &[]);
        assert!(!ok && records.is_empty(), "{}: {stderr}", path.display());
        assert!(stderr.contains(want), "{}: {stderr}", path.display());
        assert_eq!(stderr.lines().filter(|l| l.contains("ERROR")).count(), 1, "{stderr}");
    }
}

/// `--speed`: at 10x, two packets 2 s apart take about 200 ms to replay,
/// as fast as can be much less; the records are the same at every speed.
#[test]
fn speed_paces_the_replay_and_changes_no_record() {
    let dir = TempDir::new("replayspeed");
    let syn = packets::named("ipv4-tcp-syn").frame;
    let t0 = 1_767_225_600_000_000_000u64;
    let path = dir.join("two.pcap");
    std::fs::write(&path, pcap(&[(t0, syn.clone()), (t0 + 2_000_000_000, syn)], 1)).unwrap();
    let timed = |args: &[&str]| {
        let started = std::time::Instant::now();
        let (ok, records, stderr) = replay(&dir, &[&path], args);
        assert!(ok, "{stderr}");
        (started.elapsed(), records)
    };
    let (fast, fast_records) = timed(&[]);
    let (paced, paced_records) = timed(&["--speed", "10x"]);
    assert!(paced >= std::time::Duration::from_millis(190), "10x took {paced:?}");
    assert!(paced < std::time::Duration::from_millis(1500) && fast < paced, "10x {paced:?}, as fast {fast:?}");
    assert_eq!(fast_records, paced_records);
    let (ok, _, stderr) = replay(&dir, &[&path], &["--speed", "0x"]);
    assert!(!ok && stderr.contains("a factor from 0.001x"), "{stderr}");
}

/// A metadata file names replayed records as it names live ones, at every
/// packet time (the capture is from January, the file from today): both
/// pods, their namespace, node and workload, and the tunnel's nodes. The
/// config's `[metadata] file` serves when no flag names one, and the flag
/// wins over it. A file that is not one fails the replay before any record,
/// naming the file and what is wrong.
#[test]
fn a_metadata_file_names_the_records() {
    let dir = TempDir::new("replaynames");
    let vxlan = packets::named("vxlan-8472-ipv4-udp").frame;
    let t0 = 1_767_225_600_000_000_000u64;
    let path = dir.join("vxlan.pcap");
    std::fs::write(&path, pcap(&[(t0, vxlan.clone()), (t0 + 1_000_000_000, vxlan)], 1)).unwrap();
    let (ok, plain, stderr) = replay(&dir, &[&path], &[]);
    assert!(ok, "{stderr}");
    let r = &plain[0];
    assert_eq!((r.src_pod.as_deref(), r.outer_src_node.as_deref()), (None, None), "no source: no names");
    let (outer_src, outer_dst) = (r.outer_src_addr.unwrap(), r.outer_dst_addr.unwrap());
    let names = |src_pod: &str| {
        entry(outer_src, "node-1", "node", "")
            + &entry(outer_dst, "node-2", "node", "")
            + &entry(
                r.src_addr,
                src_pod,
                "pod",
                "namespace = \"shop\"\nnode = \"node-1\"\nworkload = \"Deployment/web\"\n",
            )
            + &entry(r.dst_addr, "db-0", "pod", "namespace = \"shop\"\nnode = \"node-2\"\n")
    };
    let (file, other, config) = (dir.join("names.toml"), dir.join("other.toml"), dir.join("vxflow.toml"));
    std::fs::write(&file, names("web-1")).unwrap();
    std::fs::write(&other, names("web-2")).unwrap();
    std::fs::write(&config, format!("[metadata]\nfile = \"{}\"\n", file.display())).unwrap();
    let names_of = |records: &[Record]| -> Vec<_> {
        records
            .iter()
            .map(|r| {
                (
                    [r.src_pod.clone(), r.src_namespace.clone(), r.src_node.clone(), r.src_workload.clone()],
                    [r.dst_pod.clone(), r.dst_namespace.clone(), r.dst_node.clone()],
                    [r.outer_src_node.clone(), r.outer_dst_node.clone()],
                    r.packets,
                )
            })
            .collect()
    };
    let want = |src_pod: &str| {
        let s = |v: &str| Some(v.to_owned());
        vec![(
            [s(src_pod), s("shop"), s("node-1"), s("Deployment/web")],
            [s("db-0"), s("shop"), s("node-2")],
            [s("node-1"), s("node-2")],
            2,
        )]
    };
    let file_arg = file.to_str().unwrap();
    let (config_arg, other_arg) = (config.to_str().unwrap(), other.to_str().unwrap());
    for (args, pod) in [
        (vec!["--metadata-file", file_arg], "web-1"),
        (vec!["--config", config_arg], "web-1"),
        (vec!["--config", config_arg, "--metadata-file", other_arg], "web-2"),
    ] {
        let (ok, records, stderr) = replay(&dir, &[&path], &args);
        assert!(ok, "{args:?}: {stderr}");
        assert_eq!(names_of(&records), want(pod), "{args:?}");
        assert!(stderr.contains("owners=4"), "{args:?}: the file's owners are logged: {stderr}");
    }
    // Hostile files: each fails before any record, with the file named.
    let bad_address = dir.join("bad-address.toml");
    std::fs::write(&bad_address, entry(r.src_addr, "x", "pod", "").replace(&r.src_addr.to_string(), "10.0.0.300"))
        .unwrap();
    let garbage = dir.join("garbage.toml");
    std::fs::write(&garbage, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let fifo = dir.join("fifo.toml");
    vxflow_testkit::mkfifo(&fifo);
    for (bad, want) in [
        (&bad_address, "entry 0 (10.0.0.300)"),
        (&garbage, "garbage.toml"),
        (&fifo, "not a regular file"),
        (&dir.join("absent.toml"), "No such file"),
    ] {
        let started = std::time::Instant::now();
        let (ok, records, stderr) = replay(&dir, &[&path], &["--metadata-file", bad.to_str().unwrap()]);
        assert!(!ok && records.is_empty(), "{}: {stderr}", bad.display());
        assert!(stderr.contains("the metadata file") && stderr.contains(want), "{}: {stderr}", bad.display());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{}", bad.display());
    }
}
