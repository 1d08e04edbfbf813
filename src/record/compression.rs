//! The five codecs of a batch's attribute bits 0-2, in the framings Kafka's clients write and
//! read: gzip streams, xerial-framed snappy (raw snappy is read too, as the Java client reads
//! librdkafka's), LZ4 frames with independent 64 KiB blocks, and zstd frames.
//!
//! Decompression is bounded by [`DECOMPRESSED_BYTES_MAX`], so a small hostile batch cannot make
//! the broker allocate without limit.

use super::batch::{ATTR_COMPRESSION_MASK, BatchError, DECOMPRESSED_BYTES_MAX};
use std::borrow::Cow;
use std::io::{Read, Write};

/// The compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    pub(crate) fn from_attributes(attributes: i16) -> Result<Compression, BatchError> {
        match attributes & ATTR_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    /// The attribute bits of this codec.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for it, as `compression.type` spells it (`none` is `uncompressed` there).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec a `compression.type` value names: None for `producer` (keep the producer's).
    pub fn from_config(value: &str) -> Option<Compression> {
        match value {
            "uncompressed" | "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Records of a batch compressed with `codec`, decompressed (borrowed when uncompressed).
pub fn decompress(codec: Compression, raw: &[u8]) -> Result<Cow<'_, [u8]>, BatchError> {
    let fail = |reason: String| BatchError::Decompression {
        codec: codec.name(),
        reason,
    };
    let out = match codec {
        Compression::None => return Ok(Cow::Borrowed(raw)),
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(raw)).map_err(fail)?,
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(raw)).map_err(fail)?,
        Compression::Zstd => {
            let dec =
                ruzstd::decoding::StreamingDecoder::new(raw).map_err(|e| fail(e.to_string()))?;
            read_bounded(dec).map_err(fail)?
        }
        Compression::Snappy => snappy_decompress(raw).map_err(fail)?,
    };
    Ok(Cow::Owned(out))
}

/// `body` (a batch's records) compressed with `codec`. `gzip_level` is
/// `compression.gzip.level` (-1: the codec's default, else 1 to 9); lz4 and zstd have one
/// level here (lz4_flex's, and ruzstd's fastest, about zstd's level 1).
pub fn compress(codec: Compression, body: &[u8], gzip_level: i32) -> Vec<u8> {
    match codec {
        Compression::None => body.to_vec(),
        Compression::Gzip => {
            let level = match u32::try_from(gzip_level) {
                Ok(l @ 1..=9) => flate2::Compression::new(l),
                _ => flate2::Compression::default(),
            };
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), level);
            enc.write_all(body).expect("writing to a Vec cannot fail");
            enc.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Snappy => snappy_xerial(body),
        Compression::Lz4 => {
            // Kafka's KafkaLZ4BlockOutputStream: independent 64 KiB blocks, no checksums of
            // content (the batch CRC covers it).
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(body.len() / 2),
            );
            enc.write_all(body).expect("writing to a Vec cannot fail");
            enc.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => {
            ruzstd::encoding::compress_to_vec(body, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

fn read_bounded(reader: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(format!("output exceeds {DECOMPRESSED_BYTES_MAX} bytes"));
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// The Java client's (xerial's) default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Snappy in the xerial framing the Java client writes: the magic, version 1 and compatible
/// version 1, then blocks of at most 32 KiB, each a big-endian u32 length and raw snappy.
fn snappy_xerial(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + body.len() / 2);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for chunk in body.chunks(XERIAL_BLOCK) {
        let block = enc
            .compress_vec(chunk)
            .expect("a 32 KiB block is within snappy's limits");
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// Snappy cannot expand a block by more than this factor.
const SNAPPY_EXPANSION_MAX: usize = 24;

/// Kafka's snappy: the xerial framing (a 16-byte magic header, then blocks each preceded by a
/// big-endian u32 length), or plain raw snappy when the magic is absent, as the Java client
/// accepts.
fn snappy_decompress(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let decode_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let n = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        // The length is the sender's claim. Snappy's best case is a 64-byte copy from a
        // 3-byte op (< 22x), so a larger claim is a lie: refuse it before allocating.
        if n > block.len().saturating_mul(SNAPPY_EXPANSION_MAX) {
            return Err(format!(
                "block of {} bytes claims {n} bytes uncompressed",
                block.len()
            ));
        }
        if out.len() + n > DECOMPRESSED_BYTES_MAX {
            return Err(format!("output exceeds {DECOMPRESSED_BYTES_MAX} bytes"));
        }
        let start = out.len();
        out.resize(start + n, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    if raw.len() >= XERIAL_HEADER_LEN && raw[..8] == XERIAL_MAGIC[..] {
        let mut rest = &raw[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err("truncated xerial block length".into());
            }
            let n = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            rest = &rest[4..];
            if rest.len() < n {
                return Err("truncated xerial block".into());
            }
            decode_block(&rest[..n], &mut out)?;
            rest = &rest[n..];
        }
    } else {
        decode_block(raw, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_empty_small_and_multi_block_bodies() {
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for body in [&b""[..], b"hello hello hello", &big[..]] {
            for codec in Compression::ALL {
                for level in [-1, 1, 9] {
                    let packed = compress(codec, body, level);
                    let back = decompress(codec, &packed)
                        .unwrap_or_else(|e| panic!("{codec:?} level {level}: {e}"));
                    assert_eq!(&back[..], body, "{codec:?}");
                }
            }
        }
    }

    #[test]
    fn snappy_is_framed_as_the_java_client_frames_it() {
        let packed = compress(Compression::Snappy, &[7u8; 70_000], -1);
        assert_eq!(&packed[..8], XERIAL_MAGIC);
        assert_eq!(&packed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // 70,000 bytes are three 32 KiB blocks.
        let mut rest = &packed[16..];
        let mut blocks = 0;
        while !rest.is_empty() {
            let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            rest = &rest[4 + n..];
            blocks += 1;
        }
        assert_eq!(blocks, 3);
    }

    #[test]
    fn lz4_frames_have_independent_64k_blocks_as_kafka_reads_them() {
        let packed = compress(Compression::Lz4, b"abcabcabc", -1);
        // Magic, then FLG: version 01, block independence set, no checksums, no size.
        assert_eq!(&packed[..4], &[0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(
            packed[4] & 0b1111_1100,
            0b0110_0000,
            "FLG {:#010b}",
            packed[4]
        );
        // BD: block max size 64 KiB (4).
        assert_eq!((packed[5] >> 4) & 0x7, 4);
    }

    #[test]
    fn configured_names_map_to_codecs() {
        assert_eq!(Compression::from_config("producer"), None);
        assert_eq!(
            Compression::from_config("uncompressed"),
            Some(Compression::None)
        );
        for c in Compression::ALL {
            assert_eq!(Compression::from_config(c.name()), Some(c));
            assert_eq!(Compression::from_attributes(c.attribute_bits()).unwrap(), c);
        }
    }
}
