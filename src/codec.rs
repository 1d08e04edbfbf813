//! runnel's own records on disk and between brokers: `serde` types encoded with `bincode`, in a
//! frame that carries a length, a CRC-32 and a version, so damage is detected and a newer
//! broker can read what an older one wrote.
//!
//! ```text
//! offset  size  field
//!      0     4  length   (u32, big-endian: bytes after the CRC field)
//!      4     4  crc      (u32, big-endian: CRC-32 (IEEE, crc32fast) of the bytes after it)
//!      8     2  version  (u16, big-endian: the payload's schema version)
//!     10     -  payload  (bincode 1, default options: varint integers, little-endian)
//! ```

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes before the version: length and CRC.
pub const FRAME_OVERHEAD: usize = 8;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame incomplete: needs {needed} bytes, {available} available")]
    Incomplete { needed: usize, available: usize },
    #[error("frame length {0} is out of bounds")]
    BadLength(u32),
    #[error("frame CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown version {0}")]
    UnknownVersion(u16),
    #[error("payload does not decode: {0}")]
    Decode(String),
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Encodes `value` as a frame with schema `version`.
pub fn encode<T: Serialize>(version: u16, value: &T) -> Vec<u8> {
    let payload = options(u64::MAX)
        .serialize(value)
        .expect("serialising runnel's own types cannot fail");
    let mut out = Vec::with_capacity(FRAME_OVERHEAD + 2 + payload.len());
    let len = u32::try_from(2 + payload.len()).expect("frames are far below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[FRAME_OVERHEAD..]);
    out[4..8].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A checked frame: its version and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The payload's schema version.
    pub version: u16,
    /// The bincode payload.
    pub payload: &'a [u8],
    /// Bytes the frame took, from its length field on.
    pub len: usize,
}

/// Checks the frame at the start of `bytes` (length within `frame_bytes_max`, CRC). Does not
/// allocate.
pub fn read_frame(bytes: &[u8], frame_bytes_max: usize) -> Result<Frame<'_>, FrameError> {
    if bytes.len() < FRAME_OVERHEAD {
        return Err(FrameError::Incomplete {
            needed: FRAME_OVERHEAD,
            available: bytes.len(),
        });
    }
    let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    if len < 2 || len as usize > frame_bytes_max {
        return Err(FrameError::BadLength(len));
    }
    let total = FRAME_OVERHEAD + len as usize;
    if bytes.len() < total {
        return Err(FrameError::Incomplete {
            needed: total,
            available: bytes.len(),
        });
    }
    let stored = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[FRAME_OVERHEAD..total]);
    if stored != computed {
        return Err(FrameError::Crc { stored, computed });
    }
    Ok(Frame {
        version: u16::from_be_bytes(bytes[8..10].try_into().expect("2 bytes")),
        payload: &bytes[10..total],
        len: total,
    })
}

/// Decodes a frame's payload as `T`; allocations are bounded by the payload's size.
pub fn decode_payload<T: DeserializeOwned>(frame: &Frame<'_>) -> Result<T, FrameError> {
    options(frame.payload.len() as u64)
        .deserialize(frame.payload)
        .map_err(|e| FrameError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Thing {
        a: i64,
        b: String,
        c: Vec<u32>,
    }

    #[test]
    fn round_trip_and_damage() {
        let t = Thing {
            a: -5,
            b: "hi".into(),
            c: vec![1, 2, 3],
        };
        let bytes = encode(3, &t);
        let f = read_frame(&bytes, 1024).unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(f.len, bytes.len());
        assert_eq!(decode_payload::<Thing>(&f).unwrap(), t);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(
                read_frame(&b, 1024).is_err(),
                "flipped byte {i} went unnoticed"
            );
        }
        assert!(matches!(
            read_frame(&bytes[..5], 1024),
            Err(FrameError::Incomplete { .. })
        ));
        assert!(matches!(
            read_frame(&bytes, 4),
            Err(FrameError::BadLength(_))
        ));
    }

    #[test]
    fn hostile_payload_lengths_do_not_allocate() {
        // A payload claiming a vector of 2^60 elements must fail, not allocate.
        let mut payload = vec![0u8]; // a = 0
        payload.push(0); // empty string
        payload.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0x10]); // huge varint length
        let f = Frame {
            version: 1,
            payload: &payload,
            len: 0,
        };
        assert!(decode_payload::<Thing>(&f).is_err());
    }
}
