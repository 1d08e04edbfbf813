//! Kafka listeners, `NAME://HOST:PORT`, and how runnel picks the one it serves.
//!
//! runnel serves clients and other brokers on exactly one PLAINTEXT listener, and the
//! metadata quorum on the controller listener: the first listener named in
//! `controller.listener.names` (`CONTROLLER` by default). Any other name, TLS and SASL
//! included, is an error: silently serving plaintext where TLS was asked for would be worse
//! than not starting.

use super::error::ConfigError;
use super::value::split_list;
use std::net::IpAddr;

/// The listener name runnel serves.
const PLAINTEXT: &str = "PLAINTEXT";

/// One `NAME://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listener {
    /// The listener name, upper-cased as Kafka normalises it.
    pub(crate) name: String,
    /// The host without IPv6 brackets; empty means every interface.
    pub(crate) host: String,
    /// The port; 0 lets the operating system choose one when listening.
    pub(crate) port: u16,
}

impl Listener {
    /// `host:port` to bind or connect to; an empty host is every IPv4 interface, an IPv6
    /// address is bracketed.
    pub(crate) fn address(&self) -> String {
        match self.host.as_str() {
            "" => format!("0.0.0.0:{}", self.port),
            h if h.contains(':') => format!("[{h}]:{}", self.port),
            h => format!("{h}:{}", self.port),
        }
    }

    /// Whether the host is empty or an unspecified address: good to listen on, useless to
    /// give a client.
    pub(crate) fn is_wildcard(&self) -> bool {
        self.host.is_empty()
            || self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
    }
}

/// Parses `NAME://HOST:PORT` (Kafka's listener syntax, IPv6 hosts bracketed or not).
pub(crate) fn parse(entry: &str) -> Result<Listener, String> {
    let malformed = || format!("{entry:?} is not NAME://HOST:PORT");
    let (name, rest) = entry.split_once("://").ok_or_else(malformed)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(malformed)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(name_ok) {
        return Err(format!("{entry:?}: {name:?} is not a listener name"));
    }
    let host_ok = |c: char| c.is_ascii_alphanumeric() || "-._:%".contains(c);
    if !host.chars().all(host_ok) {
        return Err(format!(
            "{entry:?}: {host:?} is not a host name or IP address"
        ));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{entry:?}: port {port:?} is not a number from 0 to 65535"))?;
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        host: host.to_owned(),
        port,
    })
}

/// Picks the PLAINTEXT listener from `list`, the value of `key`. Listeners whose names are in
/// `controller_names` (upper case) are skipped (see [`controller`]); anything else is an
/// error, and so is no PLAINTEXT listener.
pub(crate) fn select(
    key: &str,
    list: &str,
    controller_names: &[String],
) -> Result<Listener, ConfigError> {
    select_optional(key, list, controller_names)?.ok_or_else(|| ConfigError::BadValue {
        key: key.to_owned(),
        value: list.to_owned(),
        reason: "no PLAINTEXT://HOST:PORT listener for clients".to_owned(),
    })
}

/// The controller listener in `list`: the first whose name is `controller_names`' first.
pub(crate) fn controller(
    key: &str,
    list: &str,
    controller_names: &[String],
) -> Result<Option<Listener>, ConfigError> {
    let Some(name) = controller_names.first() else {
        return Ok(None);
    };
    for entry in split_list(list) {
        let l = parse(&entry).map_err(|reason| ConfigError::BadValue {
            key: key.to_owned(),
            value: list.to_owned(),
            reason,
        })?;
        if &l.name == name {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

/// [`select`], where a node with no broker role may have no PLAINTEXT listener.
pub(crate) fn select_optional(
    key: &str,
    list: &str,
    controller_names: &[String],
) -> Result<Option<Listener>, ConfigError> {
    let bad = |reason: String| ConfigError::BadValue {
        key: key.to_owned(),
        value: list.to_owned(),
        reason,
    };
    let mut chosen: Option<Listener> = None;
    for entry in split_list(list) {
        let listener = parse(&entry).map_err(bad)?;
        if controller_names.contains(&listener.name) {
            continue;
        } else if listener.name != PLAINTEXT {
            return Err(bad(unsupported(&listener.name)));
        } else if chosen.replace(listener).is_some() {
            return Err(bad("more than one PLAINTEXT listener".to_owned()));
        }
    }
    Ok(chosen)
}

fn unsupported(name: &str) -> String {
    match name {
        "SSL" | "SASL_SSL" | "SASL_PLAINTEXT" => {
            format!("{name}: runnel supports only PLAINTEXT listeners (no TLS or SASL)")
        }
        _ => format!(
            "listener name {name}: runnel serves one listener named PLAINTEXT (it does not read \
             listener.security.protocol.map)"
        ),
    }
}

/// The listener names to skip: `controller.listener.names` if set, else `CONTROLLER`.
pub(crate) fn controller_names(setting: Option<&str>) -> Vec<String> {
    match setting {
        Some(names) => split_list(names)
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect(),
        None => vec!["CONTROLLER".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(name: &str, host: &str, port: u16) -> Listener {
        Listener {
            name: name.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_kafka_listener_syntax() {
        let cases = [
            ("PLAINTEXT://:9092", ("PLAINTEXT", "", 9092)),
            ("plaintext://h.example:1", ("PLAINTEXT", "h.example", 1)),
            ("PLAINTEXT://[::1]:9092", ("PLAINTEXT", "::1", 9092)),
            ("PLAINTEXT://::1:9092", ("PLAINTEXT", "::1", 9092)),
            ("CONTROLLER://0.0.0.0:0", ("CONTROLLER", "0.0.0.0", 0)),
        ];
        for (text, (name, host, port)) in cases {
            assert_eq!(parse(text), Ok(listener(name, host, port)), "{text}");
        }
        for bad in [
            "localhost:9092",
            "PLAINTEXT://host",
            "PLAINTEXT://h:99999",
            "://h:1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("PLAINTEXT://a/b:1")
                .unwrap_err()
                .contains("not a host")
        );
    }

    #[test]
    fn addresses_and_wildcards() {
        assert_eq!(listener("P", "", 9092).address(), "0.0.0.0:9092");
        assert_eq!(listener("P", "::1", 9092).address(), "[::1]:9092");
        assert_eq!(listener("P", "localhost", 1).address(), "localhost:1");
        for host in ["", "0.0.0.0", "::", "0:0:0:0:0:0:0:0"] {
            assert!(listener("P", host, 1).is_wildcard(), "{host:?}");
        }
        for host in ["127.0.0.1", "::1", "localhost"] {
            assert!(!listener("P", host, 1).is_wildcard(), "{host:?}");
        }
    }

    #[test]
    fn select_takes_plaintext_and_skips_controller_listeners() {
        let names = controller_names(None);
        let list = "PLAINTEXT://:9092,CONTROLLER://:9093";
        let got = select("listeners", list, &names);
        assert_eq!(got, Ok(listener("PLAINTEXT", "", 9092)));
        let got = controller("listeners", list, &names);
        assert_eq!(got, Ok(Some(listener("CONTROLLER", "", 9093))));

        let names = controller_names(Some("CTRL, quorum"));
        assert_eq!(names, ["CTRL", "QUORUM"]);
        let got = select("listeners", "CTRL://:1,PLAINTEXT://h:2", &names);
        assert_eq!(got, Ok(listener("PLAINTEXT", "h", 2)));
        let got = controller("listeners", "PLAINTEXT://h:2,QUORUM://:3,CTRL://:1", &names);
        assert_eq!(got, Ok(Some(listener("CTRL", "", 1))));
    }

    #[test]
    fn select_refuses_other_protocols_duplicates_and_none() {
        let names = controller_names(None);
        let reason = |list: &str| match select("listeners", list, &names) {
            Err(ConfigError::BadValue { key, value, reason }) => {
                assert_eq!((key.as_str(), value.as_str()), ("listeners", list));
                reason
            }
            other => panic!("{list}: {other:?}"),
        };
        assert!(reason("SSL://:9093").contains("only PLAINTEXT"));
        assert!(reason("PLAINTEXT://:1,SASL_SSL://:2").contains("no TLS or SASL"));
        assert!(reason("INTERNAL://:1").contains("listener name INTERNAL"));
        assert!(reason("PLAINTEXT://:1,PLAINTEXT://:2").contains("more than one"));
        assert!(reason("CONTROLLER://:9093").contains("no PLAINTEXT"));
    }
}
