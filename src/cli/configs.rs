//! `runnel configs ...`: kafka-configs' `--describe` and `--alter` of topic and broker configs.
//!
//! ```text
//! runnel configs --describe --entity-type topics --entity-name orders [--all]
//! runnel configs --alter --entity-type topics --entity-name orders \
//!     --add-config retention.ms=60000,cleanup.policy=[delete] --delete-config segment.bytes
//! runnel configs --alter --entity-type brokers --entity-default --add-config log.retention.ms=3600000
//! runnel configs --alter --entity-type brokers --entity-name 1 --add-config compression.type=lz4
//! ```

use super::{CliError, ConnectArgs};
use crate::client::{Admin, ConfigEntry, ConfigResource};
use crate::env::Env;
use std::io::Write;

/// kafka-configs' arguments, by its names.
#[derive(Debug, clap::Args)]
pub struct ConfigsArgs {
    /// Print the configs of the entity.
    #[arg(long, conflicts_with = "alter", required_unless_present = "alter")]
    pub describe: bool,
    /// Change the configs of the entity (with --add-config and --delete-config).
    #[arg(long)]
    pub alter: bool,
    /// What kind of entity: topics or brokers.
    #[arg(long, value_name = "TYPE")]
    pub entity_type: String,
    /// The topic's name, or the broker's id.
    #[arg(long, value_name = "NAME", required_unless_present = "entity_default")]
    pub entity_name: Option<String>,
    /// With --entity-type brokers: the cluster-wide defaults every broker takes.
    #[arg(long, conflicts_with = "entity_name")]
    pub entity_default: bool,
    /// With --describe: every config, not only those set on the entity itself.
    #[arg(long)]
    pub all: bool,
    /// Configs to set, k1=v1,k2=[v2,v3] (a list value in brackets).
    #[arg(long, value_name = "K=V,...")]
    pub add_config: Option<String>,
    /// Configs to remove (back to their defaults), k1,k2.
    #[arg(long, value_name = "K,...")]
    pub delete_config: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Runs `runnel configs`, writing its output to `out`.
pub async fn run(args: ConfigsArgs, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    let name = args.entity_name.clone().unwrap_or_default();
    let (resource, label) = match args.entity_type.as_str() {
        "topics" | "topic" if args.entity_default => {
            return Err(CliError::Usage(
                "--entity-default is for --entity-type brokers".into(),
            ));
        }
        "topics" | "topic" => (ConfigResource::Topic(name.clone()), format!("topic {name}")),
        "brokers" | "broker" if args.entity_default => (
            ConfigResource::BrokerDefault,
            "brokers in the cluster (defaults)".to_string(),
        ),
        "brokers" | "broker" => {
            let id = name.parse::<i32>().map_err(|_| {
                CliError::Usage(format!("--entity-name of a broker is its id, not '{name}'"))
            })?;
            (ConfigResource::Broker(id), format!("broker {id}"))
        }
        other => {
            return Err(CliError::Usage(format!(
                "--entity-type must be topics or brokers, not '{other}'"
            )));
        }
    };
    let topic = match &resource {
        ConfigResource::Topic(t) => Some(t.as_str()),
        ConfigResource::Broker(_) | ConfigResource::BrokerDefault => None,
    };
    let admin = Admin::new(env, args.connect.client_config())
        .map_err(|e| CliError::client(e, topic, &args.connect))?;
    if args.describe {
        let entries = admin
            .describe_configs(&resource)
            .await
            .map_err(|e| CliError::client(e, topic, &args.connect))?;
        write!(out, "{}", describe_text(&label, &entries, args.all))?;
    } else {
        let changes = changes(args.add_config.as_deref(), args.delete_config.as_deref())?;
        admin
            .incremental_alter_configs(&resource, &changes, false)
            .await
            .map_err(|e| CliError::client(e, topic, &args.connect))?;
        writeln!(out, "Completed updating config for {label}.")?;
    }
    out.flush()?;
    Ok(())
}

/// The changes `--add-config` and `--delete-config` ask for: `(key, Some(value))` to set,
/// `(key, None)` to delete.
pub fn changes(
    add: Option<&str>,
    delete: Option<&str>,
) -> Result<Vec<(String, Option<String>)>, CliError> {
    let mut out = Vec::new();
    for item in split_top_level(add.unwrap_or_default()) {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("--add-config takes KEY=VALUE pairs, not '{item}'"))
        })?;
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(v);
        out.push((k.trim().to_string(), Some(v.to_string())));
    }
    for k in delete.unwrap_or_default().split(',').map(str::trim) {
        if !k.is_empty() {
            out.push((k.to_string(), None));
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(
            "--alter needs --add-config or --delete-config".into(),
        ));
    }
    Ok(out)
}

/// Splits on commas outside brackets: `a=1,b=[x,y]` is `a=1` and `b=[x,y]`.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// kafka-configs' describe output: the configs set on the entity (or, with `all`, every one).
pub fn describe_text(label: &str, entries: &[ConfigEntry], all: bool) -> String {
    let dynamic = |e: &ConfigEntry| e.source.starts_with("DYNAMIC_");
    let mut text = if all {
        format!("All configs for {label} are:\n")
    } else {
        format!("Dynamic configs for {label} are:\n")
    };
    for e in entries.iter().filter(|e| all || dynamic(e)) {
        let value = e.value.as_deref().unwrap_or("null");
        text.push_str(&format!(
            "  {}={} sensitive={} synonyms={{{}:{}={}}}\n",
            e.name, value, e.sensitive, e.source, e.name, value
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_delete_configs_parse_as_kafka_configs_takes_them() {
        let c = changes(
            Some("retention.ms=60000, cleanup.policy=[delete,compact]"),
            Some("segment.bytes,flush.ms"),
        )
        .unwrap();
        assert_eq!(
            c,
            vec![
                ("retention.ms".into(), Some("60000".into())),
                ("cleanup.policy".into(), Some("delete,compact".into())),
                ("segment.bytes".into(), None),
                ("flush.ms".into(), None),
            ]
        );
        assert!(changes(Some("nokey"), None).is_err());
        assert!(changes(None, None).is_err());
    }

    #[test]
    fn describe_shows_only_dynamic_configs_unless_all() {
        let e = |name: &str, value: &str, source: &'static str| ConfigEntry {
            name: name.into(),
            value: Some(value.into()),
            source,
            read_only: false,
            sensitive: false,
        };
        let entries = [
            e("retention.ms", "1000", "DYNAMIC_TOPIC_CONFIG"),
            e("segment.bytes", "1073741824", "DEFAULT_CONFIG"),
        ];
        assert_eq!(
            describe_text("topic t", &entries, false),
            "Dynamic configs for topic t are:\n  retention.ms=1000 sensitive=false \
             synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}\n"
        );
        assert!(describe_text("topic t", &entries, true).contains("segment.bytes=1073741824"));
    }
}
