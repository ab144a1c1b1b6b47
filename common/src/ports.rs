//! A set of ports as one bit per port in an array map of `u64` words: the
//! UDP ports parsed as VXLAN and the exporter's own ports both use it. An
//! array rather than a hash, so the verifier inlines the lookup.

/// Words in a port bitmap: one bit for each of the 65,536 ports.
pub const PORT_WORDS: u32 = 65536 / 64;

/// Where one port's bit is in a port bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBit {
    /// Index of the word that holds it.
    pub word: u32,
    /// Its bit in that word.
    pub mask: u64,
}

impl PortBit {
    #[must_use]
    pub const fn of(port: u16) -> Self {
        Self { word: (port / 64) as u32, mask: 1 << (port % 64) }
    }

    /// Whether the port is in the set, given the bitmap's word [`PortBit::word`].
    #[must_use]
    pub const fn is_set_in(self, word: u64) -> bool {
        word & self.mask != 0
    }
}

/// The bitmap of `ports`, word by word, as userspace writes it to the map.
#[must_use]
pub fn bitmap(ports: &[u16]) -> [u64; PORT_WORDS as usize] {
    let mut words = [0; PORT_WORDS as usize];
    for &port in ports {
        let bit = PortBit::of(port);
        words[bit.word as usize] |= bit.mask;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::{PortBit, bitmap};

    #[test]
    fn every_port_has_its_own_bit() {
        let words = bitmap(&[0, 63, 64, 4789, 8472, 65535]);
        for port in 0..=u16::MAX {
            let bit = PortBit::of(port);
            let wanted = [0, 63, 64, 4789, 8472, 65535].contains(&port);
            assert_eq!(bit.is_set_in(words[bit.word as usize]), wanted, "port {port}");
        }
    }
}
