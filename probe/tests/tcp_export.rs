//! IPFIX over TCP against a collector on loopback that reads the byte stream
//! and decodes it with `netflow_parser`, one fresh parser per connection (so
//! a connection whose templates did not come first decodes short): a
//! collector that goes away and comes back gets every record exactly once;
//! a full buffer counts exactly what it dropped, and the exporting-process
//! reliability options say the same.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use netflow_parser::{
    IpfixField, NetflowPacket, NetflowParser,
    variable_versions::ipfix::{FlowSetBody, IPFix},
};
use vxflow::{
    clock::WallClock,
    export::{ExportContext, RecordSink, collector::CollectorSection, options::Losses, tcp::TcpSink},
    ifaces::NameCache,
    record::{EndReason, FlowRecord},
};
use vxflow_common::FlowKey;
use vxflow_testkit::collectors::{TcpCollector, ipfix_messages};

/// A free loopback port (bound, then released).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn record(id: u16) -> FlowRecord {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[10, 244, 0, 2]);
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&[10, 244, 1, 3]);
    FlowRecord {
        key: FlowKey {
            src_addr: a,
            dst_addr: b,
            src_port: id,
            dst_port: 5201,
            protocol: 6,
            ip_version: 4,
            ifindex: 2,
            ..FlowKey::default()
        },
        start_ns: 1_000_000_000,
        end_ns: 2_000_000_000,
        packets: 1_000 + u64::from(id),
        bytes: 100_000 + u64::from(id),
        outer_bytes: 0,
        tcp_flags: 0x10,
        end_reason: EndReason::ActiveTimeout,
    }
}

fn write(sink: &mut TcpSink, ids: std::ops::Range<u16>, last: bool) {
    let records: Vec<FlowRecord> = ids.map(record).collect();
    let mut names = NameCache::default();
    names.remember(2, "eth0");
    let mut ctx = ExportContext {
        clock: WallClock::now(),
        names: &mut names,
        ignored: Losses::default(),
        last,
        sampling: 1,
        vni_meanings: &vxflow::tunnel_ids::VniMeanings::default(),
        metadata: &vxflow::metadata::IpMap::default(),
    };
    sink.write(&records, &mut ctx).unwrap();
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One connection decoded: flow record ids (source ports), the options
/// records of the exporting-process reliability template, and per message
/// the sequence number with the data records before it.
struct Stream {
    flows: Vec<u16>,
    not_sent: Vec<[u64; 3]>,
    sequences: Vec<(u32, u32)>,
    first_has_templates: bool,
}

fn decode(bytes: &[u8]) -> Stream {
    let mut parser = NetflowParser::default();
    let mut s = Stream { flows: Vec::new(), not_sent: Vec::new(), sequences: Vec::new(), first_has_templates: false };
    let mut data_records = 0u32;
    for (i, message) in ipfix_messages(bytes).into_iter().enumerate() {
        let result = parser.parse_bytes(message);
        assert!(result.error.is_none(), "netflow_parser: {:?}", result.error);
        for packet in result.packets {
            let NetflowPacket::IPFix(IPFix { header, flowsets, .. }) = packet else { panic!("not IPFIX") };
            if i == 0 {
                s.first_has_templates = flowsets.iter().any(|f| matches!(f.body, FlowSetBody::Templates(_)));
            }
            s.sequences.push((header.sequence_number, data_records));
            for set in flowsets {
                match set.body {
                    FlowSetBody::Data(d) => {
                        for rec in d.fields {
                            data_records += 1;
                            let port = rec.iter().find(|(f, _)| *f == IpfixField::new(7, None)).unwrap();
                            let mut b = Vec::new();
                            port.1.write_be_bytes(&mut b).unwrap();
                            s.flows.push(u16::from_be_bytes([b[0], b[1]]));
                        }
                    }
                    FlowSetBody::OptionsData(d) => {
                        for rec in d.fields {
                            data_records += 1;
                            if set.header.header_id != 513 {
                                continue;
                            }
                            let value = |id| {
                                let v = &rec.iter().find(|(f, _)| *f == IpfixField::new(id, None)).unwrap().1;
                                let mut b = Vec::new();
                                v.write_be_bytes(&mut b).unwrap();
                                u64::from_be_bytes(b.try_into().unwrap())
                            };
                            s.not_sent.push([value(166), value(167), value(168)]);
                        }
                    }
                    FlowSetBody::NoTemplate(_) => panic!("data before its template on a connection"),
                    _ => {}
                }
            }
        }
    }
    s
}

fn sink(addr: SocketAddr, buffer_bytes: Option<usize>) -> TcpSink {
    let section =
        CollectorSection { buffer_bytes, ..format!("ipfix+tcp://{addr}").parse::<CollectorSection>().unwrap() };
    TcpSink::new(section.resolve().unwrap(), 42).unwrap()
}

#[test]
fn a_collector_that_goes_away_and_comes_back_gets_every_record_once() {
    let addr = free_port();
    let first = TcpCollector::start_here(addr);
    let mut sink = sink(addr, None);
    assert_eq!(sink.own_sockets()[0].protocol, 6);
    let local = sink.own_sockets()[0].local;
    write(&mut sink, 0..100, false);
    wait_for("the first 100 records are sent", || sink.stats().records_sent == 100);
    let mut connections = first.stop();
    wait_for("the sink notices the collector left", || !sink.connected());
    write(&mut sink, 100..250, false);
    assert!(sink.queued_bytes() > 0, "records wait while the collector is away");
    let second = TcpCollector::start_here(addr);
    wait_for("the sink reconnects and empties its buffer", || sink.connected() && sink.queued_bytes() == 0);
    assert_eq!(sink.own_sockets()[0].local, local, "every connection leaves from the same port");
    write(&mut sink, 250..300, true);
    sink.close();
    connections.extend(second.stop());
    let stats = sink.stats();
    assert_eq!((stats.records_sent, stats.not_sent.flows), (300, 0));
    assert_eq!(connections.len(), 2, "one connection each time the collector was up");
    let mut all = Vec::new();
    for bytes in &connections {
        let s = decode(bytes);
        assert!(s.first_has_templates, "a connection starts with the templates");
        for (sequence, before) in &s.sequences {
            assert_eq!(sequence, before, "sequence numbers count this connection's data records");
        }
        all.extend(s.flows);
    }
    let unique: BTreeSet<u16> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "no record lost or sent twice");
    assert_eq!(unique, (0..300).collect());
}

#[test]
fn a_full_buffer_counts_what_it_drops_and_the_options_say_so() {
    let addr = free_port();
    // Nobody listens: connections are refused and records pile up.
    let mut sink = sink(addr, Some(4 * 1400));
    for batch in 0..10u16 {
        write(&mut sink, batch * 50..batch * 50 + 50, false);
    }
    let failed = sink.stats().not_sent.flows;
    assert!(failed > 0, "a 5.6 kB buffer cannot hold 500 records");
    assert!(sink.queued_bytes() <= 4 * 1400);
    let collector = TcpCollector::start_here(addr);
    wait_for("the buffer drains", || sink.connected() && sink.queued_bytes() == 0);
    write(&mut sink, 0..0, true);
    sink.close();
    let connections = collector.stop();
    assert_eq!(connections.len(), 1);
    let s = decode(&connections[0]);
    let received: BTreeSet<u16> = s.flows.iter().copied().collect();
    assert_eq!(received.len(), s.flows.len(), "no record twice");
    assert_eq!(u64::try_from(s.flows.len()).unwrap() + failed, 500, "every record is either received or counted");
    let dropped: Vec<FlowRecord> = (0..500).filter(|i| !received.contains(i)).map(record).collect();
    let want = [failed, dropped.iter().map(|r| r.packets).sum::<u64>(), dropped.iter().map(|r| r.bytes).sum::<u64>()];
    assert_eq!(s.not_sent.last(), Some(&want), "the final options record reports exactly what was dropped");
    let stats = sink.stats();
    assert_eq!((stats.not_sent.packets, stats.not_sent.octets), (want[1], want[2]));
}

/// A collector that accepts and never reads: once the socket buffers are
/// full every write blocks, yet closing takes the promised 5 s flush at
/// most, and what did not go is counted as not sent, never lost silently.
#[test]
fn closing_is_bounded_when_the_collector_reads_nothing() {
    let addr = free_port();
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    listener.bind(&addr.into()).unwrap();
    listener.listen(1).unwrap();
    let listener: TcpListener = listener.into();
    let holder = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(12));
        drop(conn);
    });
    let mut sink = sink(addr, Some(64 << 20));
    // About 4 MB of records: far more than the socket buffers hold.
    for batch in 0..100u16 {
        write(&mut sink, batch * 600..batch * 600 + 600, false);
    }
    wait_for("connected", || sink.connected());
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    sink.close();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "close took {took:?}");
    let stats = sink.stats();
    assert_eq!(stats.records_sent + stats.not_sent.flows, 60_000, "{stats:?}");
    assert!(stats.not_sent.flows > 0, "the collector took everything? {stats:?}");
    holder.join().unwrap();
}
