//! Variable-length integers inside record batches, as Kafka's v2 record
//! format defines them: a signed value is zigzag-encoded (0, -1, 1, -2, ...
//! become 0, 1, 2, 3, ...) and then written as unsigned LEB128, seven bits a
//! byte, least significant group first. A *varint* holds an `i32` (at most 5
//! bytes), a *varlong* an `i64` (at most 10). Unsigned LEB128 on its own
//! (`uvarint`) is the building block. Decoding is bounded and strict: a value
//! that does not fit its type, or an encoding longer than its type allows,
//! is an error, never a wrap.

use crate::error::ProtocolError;

/// Longest encoding of a `u64` or a varlong (ceil(64 / 7)).
pub const VARINT_MAX_BYTES: usize = 10;
/// Longest encoding of a 32-bit varint (ceil(32 / 7)).
pub const VARINT32_MAX_BYTES: usize = 5;

pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes a zigzag varlong. For a value in `i32` range the bytes are those
/// of the 32-bit varint too (zigzag of an `i32` widened to `i64` is the
/// same number), so this writes both kinds.
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

/// Bytes `put_varint(value)` writes.
pub fn varint_len(value: i64) -> usize {
    uvarint_len(zigzag_encode(value))
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

/// Reads a zigzag varlong (an `i64`, at most 10 bytes).
pub fn get_varint(buf: &[u8]) -> Result<(i64, usize), ProtocolError> {
    if let Some(&byte) = buf.first() {
        if byte < 0x80 {
            return Ok((zigzag_decode(u64::from(byte)), 1));
        }
    }
    let (raw, used) = get_uvarint(buf)?;
    Ok((zigzag_decode(raw), used))
}

/// Reads a zigzag 32-bit varint (at most 5 bytes, the value within `i32`).
/// Lengths, counts and offset deltas inside records are these.
#[inline]
pub fn get_varint32(buf: &[u8]) -> Result<(i32, usize), ProtocolError> {
    match buf.first() {
        Some(&byte) if byte < 0x80 => Ok((zigzag_decode32(u32::from(byte)), 1)),
        _ => get_varint32_long(buf),
    }
}

fn get_varint32_long(buf: &[u8]) -> Result<(i32, usize), ProtocolError> {
    let mut value: u32 = 0;
    for (index, &byte) in buf.iter().take(VARINT32_MAX_BYTES).enumerate() {
        let low = u32::from(byte & 0x7f);
        if index == VARINT32_MAX_BYTES - 1 && low > 0x0f {
            return Err(ProtocolError::Malformed("varint overflows 32 bits"));
        }
        value |= low << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((zigzag_decode32(value), index + 1));
        }
    }
    if buf.len() < VARINT32_MAX_BYTES {
        Err(ProtocolError::Malformed("truncated varint"))
    } else {
        Err(ProtocolError::Malformed("varint longer than 5 bytes"))
    }
}

fn zigzag_decode32(value: u32) -> i32 {
    ((value >> 1) as i32) ^ -((value & 1) as i32)
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
        fn varlong_round_trips(value: i64) {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            prop_assert_eq!(get_varint(&out).unwrap(), (value, out.len()));
        }

        #[test]
        fn varint32_round_trips(value: i32) {
            let mut out = Vec::new();
            put_varint(&mut out, i64::from(value));
            prop_assert!(out.len() <= VARINT32_MAX_BYTES);
            prop_assert_eq!(get_varint32(&out).unwrap(), (value, out.len()));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes: Vec<u8>) {
            let _ = get_uvarint(&bytes);
            let _ = get_varint(&bytes);
            let _ = get_varint32(&bytes);
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

    #[test]
    fn varint32_is_bounded_to_five_bytes_and_32_bits() {
        // zigzag(i32::MIN) = u32::MAX: the widest valid 32-bit varint.
        assert_eq!(
            get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap(),
            (i32::MIN, 5)
        );
        assert!(get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        assert!(get_varint32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]).is_err());
        assert!(get_varint32(&[0x80]).is_err());
        assert!(get_varint32(&[]).is_err());
    }

    #[test]
    fn zigzag_matches_kafka_examples() {
        // The examples of Kafka's record format description.
        for (value, encoded) in [(0i64, 0u8), (-1, 1), (1, 2), (-2, 3), (2, 4)] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, [encoded]);
        }
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xd8, 0x04]);
    }
}
