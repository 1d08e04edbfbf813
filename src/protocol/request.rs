//! Request headers and response frames.
//!
//! A request frame starts with `api_key: i16, api_version: i16, correlation_id: i32` in every
//! header version; the rest of the header (client id, tagged fields) depends on the version.
//! Those first eight bytes are read by hand, so a short or unknown request can be answered or
//! logged by its correlation id without trusting anything else in it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// A request whose header has been parsed.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// The API.
    pub api_key: ApiKey,
    /// The API version the client used.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's id, for logs.
    pub client_id: Option<String>,
    /// The undecoded body.
    pub body: Bytes,
}

/// Why a request could not be parsed far enough to be dispatched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("{api_key:?} v{api_version} header does not decode: {reason}")]
    BadHeader {
        api_key: ApiKey,
        api_version: i16,
        reason: String,
    },
}

/// Encoding or decoding a message body failed (the codec's own error, as text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

impl CodecError {
    fn from_codec(e: impl std::fmt::Display) -> CodecError {
        CodecError(e.to_string())
    }
}

/// Parses a request frame's header. The API version is not checked here.
pub fn parse_request(mut frame: Bytes) -> Result<RequestFrame, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApiKey {
        api_key: raw_key,
        correlation_id,
    })?;
    // KIP-511: an ApiVersions request in a version the broker does not know must still be
    // answered (with the v0 response), so its header is not parsed beyond the fixed prefix.
    let unknown_api_versions = api_key == ApiKey::ApiVersions
        && super::supported_range(api_key)
            .is_none_or(|(lo, hi)| api_version < lo || api_version > hi);
    if unknown_api_versions {
        return Ok(RequestFrame {
            api_key,
            api_version,
            correlation_id,
            client_id: None,
            body: Bytes::new(),
        });
    }
    let header_version = api_key.request_header_version(api_version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| RequestError::BadHeader {
            api_key,
            api_version,
            reason: e.to_string(),
        })?;
    Ok(RequestFrame {
        api_key,
        api_version,
        correlation_id,
        client_id: header.client_id.map(|s| s.to_string()),
        body: frame,
    })
}

/// Encodes a response frame (size, header, body). The header version follows the API and
/// version; ApiVersions responses always use header v0, as clients expect.
pub fn encode_response<B: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &B,
) -> Result<Bytes, CodecError> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .map_err(CodecError::from_codec)?;
    body.encode(&mut buf, api_version)
        .map_err(CodecError::from_codec)?;
    let size = i32::try_from(buf.len() - 4).map_err(CodecError::from_codec)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads a response frame's correlation id and returns the body after the header, for the
/// client side. `api_key`/`api_version` must be those of the request it answers.
pub fn parse_response_header(
    mut frame: Bytes,
    api_key: ApiKey,
    api_version: i16,
) -> Result<(i32, Bytes), CodecError> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    };
    if frame.len() < 4 {
        return Err(CodecError(format!(
            "response of {} bytes is too short",
            frame.len()
        )));
    }
    let header =
        ResponseHeader::decode(&mut frame, header_version).map_err(CodecError::from_codec)?;
    Ok((header.correlation_id, frame))
}

/// Encodes a request frame (size, header, body), for the client side.
pub fn encode_request<B: Encodable>(header: &RequestHeader, body: &B) -> Result<Bytes, CodecError> {
    let mut buf = BytesMut::new();
    encode_request_into(&mut buf, header, body)?;
    Ok(buf.freeze())
}

/// Encodes a request frame into `buf`, replacing what it held. A client that sends many large
/// requests reuses one buffer, rather than having fresh megabytes mapped for each.
pub fn encode_request_into<B: Encodable>(
    buf: &mut BytesMut,
    header: &RequestHeader,
    body: &B,
) -> Result<(), CodecError> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| CodecError(format!("unknown API key {}", header.request_api_key)))?;
    let header_version = api_key.request_header_version(header.request_api_version);
    // Sized up front: a produce request carries megabytes of batches, and growing the buffer
    // by doubling would copy them again and again.
    let body_size = body
        .compute_size(header.request_api_version)
        .map_err(CodecError::from_codec)?;
    buf.clear();
    buf.reserve(4 + 64 + body_size);
    buf.put_i32(0);
    header
        .encode(buf, header_version)
        .map_err(CodecError::from_codec)?;
    body.encode(buf, header.request_api_version)
        .map_err(CodecError::from_codec)?;
    let size = i32::try_from(buf.len() - 4).map_err(CodecError::from_codec)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The correlation id of a frame too damaged to parse, if it is long enough to carry one.
pub fn correlation_id_of(frame: &[u8]) -> Option<i32> {
    let mut b = frame.get(4..8)?;
    Some(b.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn request_round_trip_and_damage() {
        for version in [0i16, 3] {
            let header = RequestHeader::default()
                .with_request_api_key(ApiKey::ApiVersions as i16)
                .with_request_api_version(version)
                .with_correlation_id(42)
                .with_client_id(Some(StrBytes::from_static_str("me")));
            let body = ApiVersionsRequest::default();
            let frame = encode_request(&header, &body).unwrap();
            let r = parse_request(frame.slice(4..)).unwrap();
            assert_eq!(
                (r.api_key, r.api_version, r.correlation_id),
                (ApiKey::ApiVersions, version, 42)
            );
            assert_eq!(r.client_id.as_deref(), Some("me"));
        }
        assert_eq!(
            parse_request(Bytes::from_static(&[0, 1, 2])).unwrap_err(),
            RequestError::TooShort(3)
        );
        assert_eq!(
            parse_request(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 9])).unwrap_err(),
            RequestError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 9
            }
        );
        // A client id whose length runs past the frame.
        assert!(matches!(
            parse_request(Bytes::from_static(&[0, 18, 0, 1, 0, 0, 0, 9, 0x7f, 0x7f])),
            Err(RequestError::BadHeader { .. })
        ));
    }
}
