//! The checksums of the containers vidaud writes itself: Ogg's CRC-32 and
//! FLAC's CRC-8 and CRC-16, all MSB-first, initial value 0, no reflection
//! and no final inversion; one table-driven algorithm for every width.
//! And the one reflected CRC, the LAME header's CRC-16 (`Reflected16`).

/// A CRC of `WIDTH` bits with its polynomial's table.
pub(crate) struct Crc<const WIDTH: u32> {
    table: [u32; 256],
}

impl<const WIDTH: u32> Crc<WIDTH> {
    pub(crate) const fn new(poly: u32) -> Self {
        let top = 1u32 << (WIDTH - 1);
        let mask = if WIDTH == 32 {
            u32::MAX
        } else {
            (1 << WIDTH) - 1
        };
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            // The byte at the top of the register, shifted through.
            let mut crc = if WIDTH >= 8 {
                (i as u32) << (WIDTH - 8)
            } else {
                i as u32
            };
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & top != 0 {
                    ((crc << 1) ^ poly) & mask
                } else {
                    (crc << 1) & mask
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        Self { table }
    }

    /// `crc` carried on over `bytes`.
    pub(crate) fn update(&self, crc: u32, bytes: &[u8]) -> u32 {
        let mask = if WIDTH == 32 {
            u32::MAX
        } else {
            (1 << WIDTH) - 1
        };
        bytes.iter().fold(crc, |crc, &byte| {
            let index = ((crc >> (WIDTH - 8)) as u8 ^ byte) as usize;
            ((crc << 8) ^ self.table[index]) & mask
        })
    }
}

/// Ogg's page checksum.
pub(crate) static OGG: Crc<32> = Crc::new(0x04c1_1db7);
/// A FLAC frame header's checksum.
pub(crate) static FLAC_HEADER: Crc<8> = Crc::new(0x07);
/// A FLAC frame's checksum.
pub(crate) static FLAC_FRAME: Crc<16> = Crc::new(0x8005);

/// A reflected (LSB-first) CRC-16, initial value 0, no final inversion:
/// CRC-16/ARC, which the LAME header uses for its own bytes and the
/// music's.
pub(crate) struct Reflected16 {
    table: [u16; 256],
}

impl Reflected16 {
    /// `poly` reflected (0xa001 for 0x8005).
    pub(crate) const fn new(poly: u16) -> Self {
        let mut table = [0u16; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u16;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ poly
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        Self { table }
    }

    /// `crc` carried on over `bytes`.
    pub(crate) fn update(&self, crc: u16, bytes: &[u8]) -> u16 {
        bytes.iter().fold(crc, |crc, &byte| {
            (crc >> 8) ^ self.table[usize::from((crc as u8) ^ byte)]
        })
    }
}

/// The LAME header's checksum (of the header itself, and of the music).
pub(crate) static LAME: Reflected16 = Reflected16::new(0xa001);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checks_are_the_formats_own() {
        // CRC-32/POSIX without its final inversion, CRC-8/SMBUS and
        // CRC-16/UMTS: the catalogue's check values of "123456789".
        assert_eq!(OGG.update(0, b"123456789"), 0x765e_7680 ^ 0xffff_ffff);
        assert_eq!(FLAC_HEADER.update(0, b"123456789"), 0xf4);
        assert_eq!(FLAC_FRAME.update(0, b"123456789"), 0xfee8);
        // CRC-16/ARC.
        assert_eq!(LAME.update(0, b"123456789"), 0xbb3d);
        assert_eq!(LAME.update(LAME.update(0, b"1234"), b"56789"), 0xbb3d);
    }
}
