//! Why a configuration was refused.

use std::fmt;

/// Which set of keys a name was looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `server.properties`, `--override`: the broker's keys.
    Broker,
    /// CreateTopics, `runnel topic create --config`: the topic-level keys.
    Topic,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Broker => "broker",
            Scope::Topic => "topic",
        })
    }
}

/// A configuration runnel refuses. At start-up this stops the broker; for a topic the broker
/// answers INVALID_CONFIG with the message. Every message names the key, or the line or flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown {scope} configuration key {key:?}{}", hint_suffix(.hint))]
    UnknownKey {
        /// The key as given.
        key: String,
        /// Broker or topic keys.
        scope: Scope,
        /// The right name, when the key belongs to the other scope.
        hint: Option<String>,
    },
    #[error("invalid value {value:?} for configuration key {key}: {reason}")]
    BadValue {
        /// The key whose value is refused.
        key: String,
        /// The value as given (trimmed).
        value: String,
        /// Why it is refused.
        reason: String,
    },
    #[error("line {line} of the properties file: {reason}")]
    Syntax {
        /// 1-based line where the entry starts.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    #[error("--override {text:?}: expected KEY=VALUE")]
    BadOverride {
        /// The override as given.
        text: String,
    },
    #[error("--{flag} {value:?}: {reason}")]
    BadFlag {
        /// The flag's name without dashes.
        flag: &'static str,
        /// The flag's value as given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    #[error(
        "listeners binds every interface ({listen}) and advertised.listeners is not set, so there \
         is no address to give clients: set advertised.listeners=PLAINTEXT://HOST:PORT \
         (or --advertised HOST:PORT) to a name or address clients can reach"
    )]
    NoAdvertisedAddress {
        /// The wildcard listen address.
        listen: String,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}
