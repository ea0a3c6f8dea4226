//! CRC-32 (IEEE 802.3, the one ZIP and zlib use), computed as the bytes stream by: no crate for
//! one table and one loop.

/// The reflected polynomial 0x04C11DB7.
const POLY: u32 = 0xEDB8_8320;

/// One entry per byte value, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(!0)
    }
}

impl Crc32 {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn value(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let crc = |parts: &[&[u8]]| {
            let mut c = Crc32::default();
            parts.iter().for_each(|p| c.update(p));
            c.value()
        };
        assert_eq!(crc(&[]), 0);
        // The standard check value, whole and in pieces.
        assert_eq!(crc(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc(&[b"1234", b"", b"56789"]), 0xCBF4_3926);
        assert_eq!(
            crc(&[b"The quick brown fox jumps over the lazy dog"]),
            0x414F_A339
        );
    }
}
