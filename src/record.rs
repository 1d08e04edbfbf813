//! Kafka's record batches (RecordBatch v2), shared by the log, the broker and the client.
//!
//! - [`batch`]: the format byte by byte, integrity checks, record iteration, encoding.
//! - [`compression`]: the five codecs of attribute bits 0-2, both ways.
//! - [`validator`]: what a leader does to a producer's batches before it appends them, as
//!   Kafka's `LogValidator`: timestamp bounds, `compression.type` (recompressing when the
//!   producer's codec differs) and `message.timestamp.type=LogAppendTime`.

pub mod batch;
pub mod compression;
pub mod validator;
