//! Unsigned LEB128 varints and zigzag-encoded signed varints, as used inside
//! record batches. Decoding is bounded: at most 10 bytes for a `u64`, and a
//! value that overflows is an error, never a wrap.

use crate::error::ProtocolError;

/// Longest encoding of a `u64` (ceil(64 / 7)).
pub const VARINT_MAX_BYTES: usize = 10;

pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, zigzag_encode(value));
}

pub fn uvarint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

pub fn zigzag_encode(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub fn zigzag_decode(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Reads an unsigned varint at the front of `buf`, returning the value and
/// the number of bytes it took.
pub fn get_uvarint(buf: &[u8]) -> Result<(u64, usize), ProtocolError> {
    let mut value: u64 = 0;
    for (index, byte) in buf.iter().take(VARINT_MAX_BYTES).enumerate() {
        let low = u64::from(byte & 0x7f);
        if index == VARINT_MAX_BYTES - 1 && low > 1 {
            return Err(ProtocolError::Malformed("varint overflows u64"));
        }
        value |= low << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    if buf.len() < VARINT_MAX_BYTES {
        Err(ProtocolError::Malformed("truncated varint"))
    } else {
        Err(ProtocolError::Malformed("varint longer than 10 bytes"))
    }
}

pub fn get_varint(buf: &[u8]) -> Result<(i64, usize), ProtocolError> {
    let (raw, used) = get_uvarint(buf)?;
    Ok((zigzag_decode(raw), used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn uvarint_round_trips(value: u64) {
            let mut out = Vec::new();
            put_uvarint(&mut out, value);
            prop_assert_eq!(out.len(), uvarint_len(value));
            prop_assert_eq!(get_uvarint(&out).unwrap(), (value, out.len()));
        }

        #[test]
        fn varint_round_trips(value: i64) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            prop_assert_eq!(get_varint(&out).unwrap(), (value, out.len()));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes: Vec<u8>) {
            let _ = get_uvarint(&bytes);
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert!(get_uvarint(&[0x80; 11]).is_err());
        assert!(get_uvarint(&[0x80, 0x80]).is_err());
        assert!(
            get_uvarint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err()
        );
        assert_eq!(
            get_uvarint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap(),
            (u64::MAX, 10)
        );
    }
}
