//! Packing integer codes into bytes: int8 one per byte, int4 two per byte (low nibble first).
//! Signed (symmetric) codes are stored two's complement in their 8 or 4 bits.

use crate::uniform::QuantMode;

/// Packs `codes` (already clamped to the spec's code range) into `ceil(n·bits/8)` bytes.
///
/// # Panics
/// If `bits` is not 4 or 8.
pub fn pack_codes(codes: &[i32], bits: u32) -> Vec<u8> {
    match bits {
        8 => codes.iter().map(|&q| (q & 0xFF) as u8).collect(),
        4 => codes
            .chunks(2)
            .map(|pair| {
                let lo = (pair[0] & 0xF) as u8;
                let hi = pair.get(1).map_or(0, |&q| (q & 0xF) as u8);
                lo | (hi << 4)
            })
            .collect(),
        _ => panic!("pack_codes: bits must be 4 or 8, got {bits}"),
    }
}

/// Inverse of [`pack_codes`]: `n` codes, sign-extended in [`QuantMode::Symmetric`].
///
/// # Panics
/// If `bits` is not 4 or 8, or `bytes` holds fewer than `n` codes.
pub fn unpack_codes(bytes: &[u8], n: usize, bits: u32, mode: QuantMode) -> Vec<i32> {
    let signed = mode == QuantMode::Symmetric;
    let widen = |raw: u8, width: u32| -> i32 {
        let v = i32::from(raw);
        if signed && v >= 1 << (width - 1) {
            v - (1 << width)
        } else {
            v
        }
    };
    let needed = (n * bits as usize).div_ceil(8);
    assert!(
        bytes.len() >= needed,
        "{} bytes cannot hold {n} {bits}-bit codes",
        bytes.len()
    );
    match bits {
        8 => bytes[..n].iter().map(|&b| widen(b, 8)).collect(),
        4 => (0..n)
            .map(|i| {
                let b = bytes[i / 2];
                widen(if i % 2 == 0 { b & 0xF } else { b >> 4 }, 4)
            })
            .collect(),
        _ => panic!("unpack_codes: bits must be 4 or 8, got {bits}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_code() {
        for (bits, mode, lo, hi) in [
            (8, QuantMode::Affine, 0, 255),
            (8, QuantMode::Symmetric, -128, 127),
            (4, QuantMode::Affine, 0, 15),
            (4, QuantMode::Symmetric, -8, 7),
        ] {
            // Odd length: the last int4 byte is half empty.
            let codes: Vec<i32> = (lo..=hi).chain([lo]).collect();
            let bytes = pack_codes(&codes, bits);
            assert_eq!(bytes.len(), (codes.len() * bits as usize).div_ceil(8));
            assert_eq!(unpack_codes(&bytes, codes.len(), bits, mode), codes);
        }
        assert_eq!(pack_codes(&[1, 2, 15], 4), vec![0x21, 0x0F]);
        assert_eq!(pack_codes(&[-1, -8], 4), vec![0x8F]);
    }
}
