//! Options records: what a collector needs to read the flow records right,
//! sent with the templates.
//!
//! - sampling: 1 in N packets counted (`kernel.sampling`; 1 in 1 by
//!   default), said explicitly so a collector never guesses a rate (IPFIX:
//!   samplingInterval 34, which nfdump and pmacct read, and RFC 5477's 304,
//!   305 and 306; v9: 34). nfcapd, and nfacctd with `nfacctd_renormalize`,
//!   multiply the records' counts by N from these;
//! - exporting-process reliability (RFC 7011 4.3): flows, packets and octets
//!   this collector did not get, with when the first and last were dropped;
//! - metering-process reliability (RFC 7011 4.2): packets and octets the
//!   datapath saw but could not account (its flow map and fallback ring were
//!   both full);
//! - interface names: `ingressInterface` to `interfaceName`, so an ifindex in
//!   a record can be named after the interface is gone.
//!
//! NetFlow v9 has standard elements for sampling and interface names only,
//! so it carries those two.

/// Options template ids: apart from the flow shapes' 256-261 and as fixed.
const SAMPLING_ID: u16 = 512;
const EXPORTING_RELIABILITY_ID: u16 = 513;
const METERING_RELIABILITY_ID: u16 = 514;
const INTERFACE_NAMES_ID: u16 = 515;

/// Bytes of an interface name: Linux's IFNAMSIZ, NUL padded.
pub const INTERFACE_NAME_LEN: u16 = 16;

/// Losses of one kind: how many, and when the first and last happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    /// Flow records (zero where only packets are known).
    pub flows: u64,
    pub packets: u64,
    pub octets: u64,
    /// Unix milliseconds of the first and last loss; zero while there is none.
    pub first_ms: u64,
    pub last_ms: u64,
}

impl Losses {
    /// Adds a loss noticed at `at_ms`.
    pub fn add(&mut self, flows: u64, packets: u64, octets: u64, at_ms: u64) {
        if flows == 0 && packets == 0 {
            return;
        }
        if self.first_ms == 0 {
            self.first_ms = at_ms;
        }
        self.last_ms = at_ms;
        self.flows += flows;
        self.packets += packets;
        self.octets += octets;
    }
}

/// The values the options records carry at one export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptionValues {
    /// What this collector did not get.
    pub not_sent: Losses,
    /// What the datapath could not account.
    pub ignored: Losses,
    /// The interfaces records can name, by ifindex.
    pub interfaces: Vec<(u32, String)>,
    /// 1 in this many packets is counted (0 is taken as 1).
    pub sampling: u32,
}

/// The two dialects that have options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Ipfix,
    Netflow9,
}

/// NetFlow v9 scope types (RFC 3954 6.1).
const V9_SCOPE_SYSTEM: u16 = 1;
const V9_SCOPE_INTERFACE: u16 = 2;

/// One options template and its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionSet {
    Sampling,
    ExportingReliability,
    MeteringReliability,
    InterfaceNames,
}

/// `(element id, length)` pairs.
type Specs = &'static [(u16, u16)];

impl OptionSet {
    /// The sets a dialect sends, in order.
    #[must_use]
    pub const fn of(dialect: Dialect) -> &'static [OptionSet] {
        match dialect {
            Dialect::Ipfix => &[
                OptionSet::Sampling,
                OptionSet::ExportingReliability,
                OptionSet::MeteringReliability,
                OptionSet::InterfaceNames,
            ],
            Dialect::Netflow9 => &[OptionSet::Sampling, OptionSet::InterfaceNames],
        }
    }

    #[must_use]
    pub const fn template_id(self) -> u16 {
        match self {
            OptionSet::Sampling => SAMPLING_ID,
            OptionSet::ExportingReliability => EXPORTING_RELIABILITY_ID,
            OptionSet::MeteringReliability => METERING_RELIABILITY_ID,
            OptionSet::InterfaceNames => INTERFACE_NAMES_ID,
        }
    }

    /// Scope and option elements. For v9 the scope ids are scope types.
    const fn layout(self, dialect: Dialect) -> (Specs, Specs) {
        match (self, dialect) {
            // observationDomainId; samplingInterval, selectorAlgorithm,
            // samplingPacketInterval, samplingPacketSpace. No selectorId: a
            // collector that matches samplers by id (nfdump) then applies
            // the rate to every record of the domain, which carry none.
            (OptionSet::Sampling, Dialect::Ipfix) => (&[(149, 4)], &[(34, 4), (304, 2), (305, 4), (306, 4)]),
            // System; SAMPLING_INTERVAL. Not SAMPLING_ALGORITHM: nfdump 1.7.1
            // takes an options template with both for no sampler at all.
            (OptionSet::Sampling, Dialect::Netflow9) => (&[(V9_SCOPE_SYSTEM, 4)], &[(34, 4)]),
            // exportingProcessId; notSentFlow/Packet/OctetTotalCount, first and last observationTimeMilliseconds.
            (OptionSet::ExportingReliability, _) => (&[(144, 4)], &[(166, 8), (167, 8), (168, 8), (323, 8), (323, 8)]),
            // observationDomainId; ignoredPacket/OctetTotalCount, first and last observationTimeMilliseconds.
            (OptionSet::MeteringReliability, _) => (&[(149, 4)], &[(164, 8), (165, 8), (323, 8), (323, 8)]),
            // ingressInterface; interfaceName.
            (OptionSet::InterfaceNames, Dialect::Ipfix) => (&[(10, 4)], &[(82, INTERFACE_NAME_LEN)]),
            (OptionSet::InterfaceNames, Dialect::Netflow9) => (&[(V9_SCOPE_INTERFACE, 4)], &[(82, INTERFACE_NAME_LEN)]),
        }
    }

    /// Bytes of one record.
    #[must_use]
    pub fn record_len(self, dialect: Dialect) -> usize {
        let (scope, fields) = self.layout(dialect);
        scope.iter().chain(fields).map(|&(_, len)| usize::from(len)).sum()
    }

    /// The options template record: RFC 7011 3.4.2.2 for IPFIX (field
    /// count, then scope field count), RFC 3954 6.1 for v9 (scope and option
    /// lengths in bytes).
    #[must_use]
    pub fn template(self, dialect: Dialect) -> Vec<u8> {
        let (scope, fields) = self.layout(dialect);
        let mut out = Vec::new();
        let n = |v: usize| u16::try_from(v).unwrap_or(u16::MAX).to_be_bytes();
        out.extend_from_slice(&self.template_id().to_be_bytes());
        match dialect {
            Dialect::Ipfix => {
                out.extend_from_slice(&n(scope.len() + fields.len()));
                out.extend_from_slice(&n(scope.len()));
            }
            Dialect::Netflow9 => {
                out.extend_from_slice(&n(scope.len() * 4));
                out.extend_from_slice(&n(fields.len() * 4));
            }
        }
        for &(id, len) in scope.iter().chain(fields) {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
        }
        out
    }

    /// This set's data records for `values`; `domain_id` is the observation
    /// domain (IPFIX) or source id (v9).
    #[must_use]
    pub fn records(self, dialect: Dialect, values: &OptionValues, domain_id: u32) -> Vec<Vec<u8>> {
        let mut r = Vec::new();
        match self {
            OptionSet::Sampling => match dialect {
                Dialect::Ipfix => {
                    let n = values.sampling.max(1);
                    r.extend_from_slice(&domain_id.to_be_bytes());
                    r.extend_from_slice(&n.to_be_bytes()); // samplingInterval (nfdump, pmacct)
                    // Every packet: systematic count-based; 1 in N at random:
                    // random n-out-of-N (RFC 5475), stated as 1 packet in
                    // each N, the interval and space collectors scale by.
                    let algorithm: u16 = if n == 1 { 1 } else { 3 };
                    r.extend_from_slice(&algorithm.to_be_bytes());
                    r.extend_from_slice(&1u32.to_be_bytes()); // 1 packet selected...
                    r.extend_from_slice(&(n - 1).to_be_bytes()); // ...per N - 1 skipped
                }
                Dialect::Netflow9 => {
                    let n = values.sampling.max(1);
                    r.extend_from_slice(&domain_id.to_be_bytes());
                    r.extend_from_slice(&n.to_be_bytes());
                }
            },
            OptionSet::ExportingReliability => {
                let l = &values.not_sent;
                r.extend_from_slice(&std::process::id().to_be_bytes());
                for v in [l.flows, l.packets, l.octets, l.first_ms, l.last_ms] {
                    r.extend_from_slice(&v.to_be_bytes());
                }
            }
            OptionSet::MeteringReliability => {
                let l = &values.ignored;
                r.extend_from_slice(&domain_id.to_be_bytes());
                for v in [l.packets, l.octets, l.first_ms, l.last_ms] {
                    r.extend_from_slice(&v.to_be_bytes());
                }
            }
            OptionSet::InterfaceNames => {
                return values
                    .interfaces
                    .iter()
                    .map(|(index, name)| {
                        let mut r = Vec::with_capacity(4 + usize::from(INTERFACE_NAME_LEN));
                        r.extend_from_slice(&index.to_be_bytes());
                        let mut padded = [0u8; INTERFACE_NAME_LEN as usize];
                        // Linux names are at most 15 bytes; a longer one is cut, still NUL-ended.
                        let len = name.len().min(padded.len() - 1);
                        padded[..len].copy_from_slice(&name.as_bytes()[..len]);
                        r.extend_from_slice(&padded);
                        r
                    })
                    .collect();
            }
        }
        vec![r]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_match_their_template_lengths() {
        let values = OptionValues {
            interfaces: vec![(2, "eth0".into()), (9, "a-very-long-interface".into())],
            ..Default::default()
        };
        for dialect in [Dialect::Ipfix, Dialect::Netflow9] {
            for &set in OptionSet::of(dialect) {
                for r in set.records(dialect, &values, 7) {
                    assert_eq!(r.len(), set.record_len(dialect), "{set:?} {dialect:?}");
                }
            }
        }
    }

    #[test]
    fn losses_keep_first_and_last_times() {
        let mut l = Losses::default();
        l.add(0, 0, 0, 5);
        assert_eq!(l, Losses::default(), "nothing lost, nothing dated");
        l.add(2, 20, 2000, 100);
        l.add(1, 10, 1000, 300);
        assert_eq!(l, Losses { flows: 3, packets: 30, octets: 3000, first_ms: 100, last_ms: 300 });
    }
}
