//! What can go wrong talking to a cluster, and whether the outcome of a request is known.

use crate::log::TopicPartition;
use crate::record::batch::BatchError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

/// A client operation's failure.
///
/// The distinction that matters to callers (and to the simulator's history checker) is
/// [`ClientError::outcome_unknown`]: a request that timed out or whose connection broke may or
/// may not have been applied by the broker.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    #[error(
        "no response from {addr} to {api:?} within {timeout_ms} ms; whether it was applied is unknown"
    )]
    Timeout {
        /// The broker.
        addr: String,
        /// The request that got no answer.
        api: ApiKey,
        /// How long the client waited.
        timeout_ms: u64,
    },
    #[error(
        "connection to {addr} lost ({reason}); whether requests in flight were applied is unknown"
    )]
    Disconnected {
        /// The broker.
        addr: String,
        /// What ended the connection.
        reason: String,
    },
    #[error("bad response from {addr}: {reason}")]
    Protocol {
        /// The broker.
        addr: String,
        /// What was wrong with the bytes.
        reason: String,
    },
    #[error("{}", unsupported_text(*api, *ours, *theirs))]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The versions this client can speak.
        ours: (i16, i16),
        /// The versions the broker advertised, if it knows the API at all.
        theirs: Option<(i16, i16)>,
    },
    #[error("{}: {message}", error_name(*code))]
    Kafka {
        /// The broker's error code.
        code: ResponseError,
        /// What the request was about and the broker's own message, if any.
        message: String,
    },
    #[error("corrupt record batch in {partition} at offset {offset}: {reason}")]
    Corrupt {
        /// Where the batch was read from.
        partition: TopicPartition,
        /// The fetch position at which it was found.
        offset: i64,
        /// What the integrity check found.
        reason: BatchError,
    },
    #[error("{what} did not complete within {timeout_ms} ms")]
    TimedOut {
        /// The operation.
        what: String,
        /// The limit that passed.
        timeout_ms: u64,
    },
    #[error(
        "{what}: an earlier attempt may have been applied ({earlier}); the last one failed: {last}"
    )]
    MaybeApplied {
        /// The operation.
        what: String,
        /// The answer that left the earlier attempt's outcome open.
        earlier: String,
        /// The error that ended the operation.
        last: Box<ClientError>,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    /// A Kafka error code with a message: the broker's if it sent one (it knows best what
    /// went wrong), else `context`, what the request was about.
    pub fn kafka(code: ResponseError, context: impl Into<String>, broker: Option<&str>) -> Self {
        let message = match broker.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => b.to_string(),
            None => context.into(),
        };
        ClientError::Kafka { code, message }
    }

    /// True when a request was (or may have been) sent but no answer came back, so the broker
    /// may or may not have applied it.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. }
                | ClientError::Disconnected { .. }
                | ClientError::MaybeApplied { .. }
        )
    }

    /// True when trying again later may succeed: network trouble, or a Kafka error Kafka
    /// itself calls retriable (leadership moving, a timeout, a storage hiccup).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Disconnected { .. } => true,
            ClientError::Kafka { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    /// The Kafka error code, if the broker sent one.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the error means the cached leader or topic is stale.
    pub fn needs_metadata_refresh(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => is_stale_metadata(*code),
            other => other.is_retriable(),
        }
    }
}

/// Errors that mean the client's idea of who leads a partition, or whether it exists, is out
/// of date.
pub fn is_stale_metadata(code: ResponseError) -> bool {
    matches!(
        code,
        ResponseError::NotLeaderOrFollower
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::LeaderNotAvailable
            | ResponseError::FencedLeaderEpoch
            | ResponseError::UnknownLeaderEpoch
            | ResponseError::KafkaStorageError
            | ResponseError::NotController
    )
}

/// Kafka's name for an error code, as its tools print it: `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn error_name(code: ResponseError) -> String {
    if let ResponseError::Unknown(n) = code {
        return format!("UNKNOWN_ERROR_CODE_{n}");
    }
    // The codec's Display is the CamelCase variant name, which maps one to one onto Kafka's
    // upper snake case names.
    let camel = code.to_string();
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn unsupported_text(api: ApiKey, ours: (i16, i16), theirs: Option<(i16, i16)>) -> String {
    match theirs {
        Some((lo, hi)) => format!(
            "UNSUPPORTED_VERSION: the broker speaks {api:?} v{lo}..={hi}, this client v{}..={}",
            ours.0, ours.1
        ),
        None => format!("UNSUPPORTED_VERSION: the broker does not support {api:?}"),
    }
}

/// The error for a response code, or `Ok` when it is 0.
pub fn check_code(
    code: i16,
    context: impl FnOnce() -> String,
    broker_message: Option<&str>,
) -> Result<(), ClientError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(e) => Err(ClientError::kafka(e, context(), broker_message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_and_retriability() {
        assert_eq!(
            error_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_name(ResponseError::InvalidTopicException),
            "INVALID_TOPIC_EXCEPTION"
        );
        assert_eq!(
            error_name(ResponseError::Unknown(999)),
            "UNKNOWN_ERROR_CODE_999"
        );
        let e = ClientError::kafka(
            ResponseError::TopicAlreadyExists,
            "topic 't'",
            Some("Topic 't' already exists."),
        );
        assert_eq!(
            e.to_string(),
            "TOPIC_ALREADY_EXISTS: Topic 't' already exists."
        );
        let e = ClientError::kafka(ResponseError::TopicAlreadyExists, "topic 't'", Some(""));
        assert_eq!(e.to_string(), "TOPIC_ALREADY_EXISTS: topic 't'");
        assert!(!e.is_retriable());
        assert!(ClientError::kafka(ResponseError::NotLeaderOrFollower, "", None).is_retriable());
        let t = ClientError::Timeout {
            addr: "a:1".into(),
            api: ApiKey::Produce,
            timeout_ms: 5,
        };
        assert!(t.outcome_unknown() && t.is_retriable());
        assert!(check_code(0, || unreachable!(), None).is_ok());
    }
}
