//! The Kafka wire protocol: size-prefixed frames, request and response headers, and the API
//! versions runnel supports. Message bodies are encoded and decoded by the `kafka-protocol`
//! crate (vendored with a fix; see `vendor/kafka-protocol/RUNNEL-PATCH.md`).

pub mod frame;
pub mod request;
pub mod versions;

pub use frame::{FrameError, read_frame};
pub use request::{
    CodecError, RequestError, RequestFrame, encode_request, encode_request_into, encode_response,
    parse_request, parse_response_header,
};
pub use versions::{SUPPORTED_APIS, supported_range};
