//! Who gets the records: a collector's address, protocol, transport and
//! message sizing, from the config file (`[[collector]]`) or the command line
//! (`--collector ipfix://HOST:PORT`), validated.

use std::{
    fmt,
    net::{SocketAddr, ToSocketAddrs as _},
    str::FromStr,
    time::Duration,
};

use serde::Deserialize;

/// Export protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// IPFIX, RFC 7011.
    Ipfix,
    /// NetFlow version 9, RFC 3954.
    Netflow9,
    /// NetFlow version 5.
    Netflow5,
}

/// Transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    /// IPFIX only (RFC 7011 10.4).
    Tcp,
}

/// Default interval between template retransmissions on UDP.
pub const DEFAULT_TEMPLATE_REFRESH: Duration = Duration::from_mins(1);
/// Default largest message: fits a 1450-byte overlay MTU with room to spare.
pub const DEFAULT_MTU: usize = 1400;
/// Smallest message size accepted (the largest template must fit).
pub const MIN_MTU: usize = 512;

/// The unspecified address of `remote`'s family, any port: where a socket
/// to `remote` binds before the kernel picks its source.
#[must_use]
pub fn unspecified_for(remote: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip: std::net::IpAddr =
        if remote.is_ipv6() { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
    std::net::SocketAddr::new(ip, 0)
}
/// Default TCP buffer: about 80,000 flow records, a few minutes of a busy
/// node's flows while a collector restarts.
pub const DEFAULT_BUFFER_BYTES: usize = 8 << 20;
/// UDP messages a second: 28 MB/s at the default MTU, some 300,000 records a
/// second, far above any steady export, and spread so that a collector with
/// a default receive buffer keeps up with a burst of ending flows.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 20_000;
/// Highest `messages_per_second`.
pub const MAX_MESSAGES_PER_SECOND: u32 = 10_000_000;

/// A `[[collector]]` table as written.
#[derive(Debug, Deserialize, PartialEq, Eq, Clone)]
#[serde(deny_unknown_fields)]
pub struct CollectorSection {
    /// `host:port`; IPv6 as `[addr]:port`.
    pub address: String,
    pub protocol: Protocol,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default, with = "humantime_serde")]
    pub template_refresh: Option<Duration>,
    pub mtu: Option<usize>,
    /// NetFlow v5 header engine type and id (v5 only; default 0).
    pub engine_type: Option<u8>,
    pub engine_id: Option<u8>,
    /// TCP only: bytes of messages held while the collector is unreachable.
    pub buffer_bytes: Option<usize>,
    /// UDP only: most messages a second, after a burst of 64.
    pub messages_per_second: Option<u32>,
}

/// A validated collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collector {
    /// As the operator wrote it, for logs.
    pub name: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    pub transport: Transport,
    pub template_refresh: Duration,
    pub mtu: usize,
    /// NetFlow v5 engine type and id.
    pub engine: (u8, u8),
    /// TCP: the most bytes of messages held while the collector is down;
    /// what does not fit is counted as not sent.
    pub buffer_bytes: usize,
    /// UDP: most messages a second (see `export::pacer`).
    pub messages_per_second: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CollectorError {
    #[error("collector {0:?}: expected SCHEME://HOST:PORT with SCHEME one of ipfix, ipfix+tcp, netflow9, netflow5")]
    Url(String),
    #[error("collector {address:?}: cannot resolve it to an address ({why})")]
    Resolve { address: String, why: String },
    #[error("collector {address:?}: transport tcp is for IPFIX only (NetFlow v5 and v9 are UDP)")]
    TcpNotIpfix { address: String },
    #[error("collector {address:?}: mtu {mtu} is out of range {MIN_MTU}..=65535")]
    Mtu { address: String, mtu: usize },
    #[error("collector {address:?}: template_refresh must be longer than zero")]
    Refresh { address: String },
    #[error("collector {address:?}: buffer_bytes is for transport tcp (UDP sends at once or counts the loss)")]
    BufferNotTcp { address: String },
    #[error("collector {address:?}: buffer_bytes {bytes} is smaller than one message (mtu {mtu})")]
    BufferTooSmall { address: String, bytes: usize, mtu: usize },
    #[error(
        "collector {address:?}: engine_type and engine_id are NetFlow v5 header fields; remove them or use protocol netflow5"
    )]
    EngineNotV5 { address: String },
    #[error("collector {address:?}: {why}")]
    Address { address: String, why: &'static str },
    #[error(
        "collector {address:?}: template_refresh must be at most {}",
        humantime::format_duration(MAX_TEMPLATE_REFRESH)
    )]
    RefreshTooLong { address: String },
    #[error("collector {address:?}: buffer_bytes {bytes} is over the limit of {MAX_BUFFER_BYTES}")]
    BufferTooBig { address: String, bytes: usize },
    #[error("collector {address:?}: messages_per_second is for UDP (TCP's own flow control paces it)")]
    RateNotUdp { address: String },
    #[error("collector {address:?}: messages_per_second {rate} is out of range 1..={MAX_MESSAGES_PER_SECOND}")]
    Rate { address: String, rate: u32 },
}

/// Longest `template_refresh`: a collector that restarted must not wait
/// longer than this for templates.
pub const MAX_TEMPLATE_REFRESH: Duration = Duration::from_hours(24);
/// Largest TCP `buffer_bytes` (1 GiB).
pub const MAX_BUFFER_BYTES: usize = 1 << 30;

/// Checks the `HOST:PORT` form before resolving it: an IPv6 address must be
/// in brackets (`::1:4739` could be `[::1]:4739` or `[::1:4739]`), and port
/// 0 is no destination.
fn check_address(address: &str) -> Result<(), &'static str> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err("expected HOST:PORT, such as 10.0.0.5:4739 or [2001:db8::5]:4739");
    };
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 address goes in brackets: [ADDRESS]:PORT, such as [::1]:4739");
    }
    if host.is_empty() || host == "[]" {
        return Err("no host before the port");
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is not a destination; collectors listen on a port such as 4739 or 2055"),
        Ok(_) => Ok(()),
        Err(_) => Err("the port must be a number from 1 to 65535"),
    }
}

impl CollectorSection {
    /// Validates and resolves the address.
    ///
    /// # Errors
    /// A message naming the collector and the bad setting.
    pub fn resolve(&self) -> Result<Collector, CollectorError> {
        let address = self.address.clone();
        check_address(&address).map_err(|why| CollectorError::Address { address: address.clone(), why })?;
        if self.transport == Transport::Tcp && self.protocol != Protocol::Ipfix {
            return Err(CollectorError::TcpNotIpfix { address });
        }
        let mtu = self.mtu.unwrap_or(DEFAULT_MTU);
        if !(MIN_MTU..=65535).contains(&mtu) {
            return Err(CollectorError::Mtu { address, mtu });
        }
        if self.protocol != Protocol::Netflow5 && (self.engine_type.is_some() || self.engine_id.is_some()) {
            return Err(CollectorError::EngineNotV5 { address });
        }
        if self.transport != Transport::Tcp && self.buffer_bytes.is_some() {
            return Err(CollectorError::BufferNotTcp { address });
        }
        let buffer_bytes = self.buffer_bytes.unwrap_or(DEFAULT_BUFFER_BYTES);
        if buffer_bytes < mtu {
            return Err(CollectorError::BufferTooSmall { address, bytes: buffer_bytes, mtu });
        }
        if buffer_bytes > MAX_BUFFER_BYTES {
            return Err(CollectorError::BufferTooBig { address, bytes: buffer_bytes });
        }
        if self.transport == Transport::Tcp && self.messages_per_second.is_some() {
            return Err(CollectorError::RateNotUdp { address });
        }
        let messages_per_second = self.messages_per_second.unwrap_or(DEFAULT_MESSAGES_PER_SECOND);
        if !(1..=MAX_MESSAGES_PER_SECOND).contains(&messages_per_second) {
            return Err(CollectorError::Rate { address, rate: messages_per_second });
        }
        let template_refresh = self.template_refresh.unwrap_or(DEFAULT_TEMPLATE_REFRESH);
        if template_refresh.is_zero() {
            return Err(CollectorError::Refresh { address });
        }
        if template_refresh > MAX_TEMPLATE_REFRESH {
            return Err(CollectorError::RefreshTooLong { address });
        }
        let resolved = self
            .address
            .to_socket_addrs()
            .map_err(|e| CollectorError::Resolve { address: address.clone(), why: e.to_string() })?
            .next()
            .ok_or_else(|| CollectorError::Resolve { address: address.clone(), why: "no address".into() })?;
        Ok(Collector {
            name: format!("{}://{}", self.scheme(), self.address),
            address: resolved,
            protocol: self.protocol,
            transport: self.transport,
            template_refresh,
            mtu,
            engine: (self.engine_type.unwrap_or(0), self.engine_id.unwrap_or(0)),
            buffer_bytes,
            messages_per_second,
        })
    }

    fn scheme(&self) -> &'static str {
        match (self.protocol, self.transport) {
            (Protocol::Ipfix, Transport::Udp) => "ipfix",
            (Protocol::Ipfix, Transport::Tcp) => "ipfix+tcp",
            (Protocol::Netflow9, _) => "netflow9",
            (Protocol::Netflow5, _) => "netflow5",
        }
    }
}

/// `--collector SCHEME://HOST:PORT`.
impl FromStr for CollectorSection {
    type Err = CollectorError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let (scheme, address) = url.split_once("://").ok_or_else(|| CollectorError::Url(url.into()))?;
        let (protocol, transport) = match scheme {
            "ipfix" => (Protocol::Ipfix, Transport::Udp),
            "ipfix+tcp" => (Protocol::Ipfix, Transport::Tcp),
            "netflow9" => (Protocol::Netflow9, Transport::Udp),
            "netflow5" => (Protocol::Netflow5, Transport::Udp),
            _ => return Err(CollectorError::Url(url.into())),
        };
        if address.is_empty() || !address.contains(':') {
            return Err(CollectorError::Url(url.into()));
        }
        Ok(Self {
            address: address.trim_end_matches('/').to_owned(),
            protocol,
            transport,
            template_refresh: None,
            mtu: None,
            engine_type: None,
            engine_id: None,
            buffer_bytes: None,
            messages_per_second: None,
        })
    }
}

impl fmt::Display for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An observation domain id that is stable for this host: FNV-1a of
/// /etc/machine-id (systemd's stable host id), else of the hostname.
#[must_use]
pub fn default_observation_domain() -> u32 {
    let seed = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    fnv1a(seed.trim().as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_protocol_and_transport() {
        let c: CollectorSection = "ipfix+tcp://127.0.0.1:4739".parse().unwrap();
        assert_eq!((c.protocol, c.transport, c.address.as_str()), (Protocol::Ipfix, Transport::Tcp, "127.0.0.1:4739"));
        let c: CollectorSection = "netflow9://[::1]:2055".parse().unwrap();
        assert_eq!(c.resolve().unwrap().address, "[::1]:2055".parse().unwrap());
        for bad in ["127.0.0.1:4739", "sflow://a:1", "ipfix://", "ipfix://host"] {
            assert!(bad.parse::<CollectorSection>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_collectors_name_the_problem() {
        let tcp_v9 = CollectorSection { transport: Transport::Tcp, ..("netflow9://127.0.0.1:2055".parse().unwrap()) };
        assert!(matches!(tcp_v9.resolve(), Err(CollectorError::TcpNotIpfix { .. })));
        let small = CollectorSection { mtu: Some(100), ..("ipfix://127.0.0.1:4739".parse().unwrap()) };
        assert!(matches!(small.resolve(), Err(CollectorError::Mtu { .. })));
        let engine = CollectorSection { engine_id: Some(3), ..("ipfix://127.0.0.1:4739".parse().unwrap()) };
        assert!(matches!(engine.resolve(), Err(CollectorError::EngineNotV5 { .. })));
        let udp_buffer =
            CollectorSection { buffer_bytes: Some(1 << 20), ..("ipfix://127.0.0.1:4739".parse().unwrap()) };
        assert!(matches!(udp_buffer.resolve(), Err(CollectorError::BufferNotTcp { .. })));
        let tiny = CollectorSection { buffer_bytes: Some(1000), ..("ipfix+tcp://127.0.0.1:4739".parse().unwrap()) };
        assert!(matches!(tiny.resolve(), Err(CollectorError::BufferTooSmall { .. })));
        let tcp_rate =
            CollectorSection { messages_per_second: Some(100), ..("ipfix+tcp://127.0.0.1:4739".parse().unwrap()) };
        assert!(matches!(tcp_rate.resolve(), Err(CollectorError::RateNotUdp { .. })));
        for rate in [0, MAX_MESSAGES_PER_SECOND + 1] {
            let c = CollectorSection { messages_per_second: Some(rate), ..("ipfix://127.0.0.1:4739".parse().unwrap()) };
            assert!(matches!(c.resolve(), Err(CollectorError::Rate { .. })), "{rate}");
        }
        let paced: CollectorSection = "netflow9://127.0.0.1:2055".parse().unwrap();
        assert_eq!(paced.resolve().unwrap().messages_per_second, DEFAULT_MESSAGES_PER_SECOND);
        let nowhere: CollectorSection = "ipfix://no-such-host.invalid:4739".parse().unwrap();
        assert!(matches!(nowhere.resolve(), Err(CollectorError::Resolve { .. })));
    }

    #[test]
    fn observation_domain_is_stable() {
        assert_eq!(default_observation_domain(), default_observation_domain());
        assert_eq!(fnv1a(b"a"), 0xe40c_292c, "FNV-1a test vector");
    }
}
