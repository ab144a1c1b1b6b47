//! Ports in array maps of `u64` words, which the verifier inlines where a
//! hash lookup is a call: a set of ports as one bit per port (the
//! exporter's own ports), and the UDP tunnel ports as two bits per port
//! (which tunnel, if any, a UDP destination port carries).

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

/// Words in a port-kind map: two bits for each of the 65,536 ports.
pub const PORT_KIND_WORDS: u32 = 65536 / 32;

/// Where one port's two-bit kind is in a port-kind map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortKind {
    /// Index of the word that holds it.
    pub word: u32,
    /// Its lowest bit's position in that word.
    pub shift: u32,
}

impl PortKind {
    #[must_use]
    pub const fn of(port: u16) -> Self {
        Self { word: (port / 32) as u32, shift: (port % 32) as u32 * 2 }
    }

    /// The port's kind (0 to 3), given the map's word [`PortKind::word`].
    #[must_use]
    pub const fn in_word(self, word: u64) -> u8 {
        ((word >> self.shift) & 3) as u8
    }
}

/// The port-kind map giving each of `ports` its kind (1 to 3), word by
/// word, as userspace writes it. A port listed twice keeps the last kind;
/// userspace refuses that before it gets here.
#[must_use]
pub fn kind_map(ports: &[(u16, u8)]) -> [u64; PORT_KIND_WORDS as usize] {
    let mut words = [0; PORT_KIND_WORDS as usize];
    for &(port, kind) in ports {
        let at = PortKind::of(port);
        let w = &mut words[at.word as usize];
        *w = (*w & !(3 << at.shift)) | (u64::from(kind & 3) << at.shift);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::{PortBit, PortKind, bitmap, kind_map};

    #[test]
    fn every_port_has_its_own_kind() {
        let set = [(0, 1), (31, 2), (32, 3), (4789, 1), (6081, 2), (65535, 2)];
        let words = kind_map(&set);
        for port in 0..=u16::MAX {
            let at = PortKind::of(port);
            let wanted = set.iter().find(|(p, _)| *p == port).map_or(0, |(_, k)| *k);
            assert_eq!(at.in_word(words[at.word as usize]), wanted, "port {port}");
        }
        // The last kind given wins.
        let words = kind_map(&[(6081, 1), (6081, 2)]);
        assert_eq!(PortKind::of(6081).in_word(words[PortKind::of(6081).word as usize]), 2);
    }

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
