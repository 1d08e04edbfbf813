//! `runnel topic ...`: kafka-topics' create, list, describe, alter (partitions) and delete.

use super::{CliError, ConnectArgs, parse_key_value};
use crate::client::{Admin, NewTopic};
use crate::env::Env;
use std::io::Write;

/// The topic commands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic. Prints `Created topic NAME.`
    Create {
        /// The topic's name: 1 to 249 characters of [a-zA-Z0-9._-].
        name: String,
        /// Number of partitions [default: the broker's num.partitions].
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's default.replication.factor].
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config override, KEY=VALUE (for example retention.ms=3600000); repeat
        /// for several.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List topic names, one per line, sorted.
    List {
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe a topic as kafka-topics does: a line with its id, partition count,
    /// replication factor and config overrides, then a line per partition with its leader,
    /// replicas and in-sync replicas (tab-separated `Key: value` fields).
    Describe {
        /// The topic.
        name: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Grow a topic to a number of partitions.
    Alter {
        /// The topic.
        name: String,
        /// The new partition count (only growing is possible).
        #[arg(long)]
        partitions: i32,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete a topic and its data. Prints `Deleted topic NAME.`
    Delete {
        /// The topic.
        name: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

/// Runs a topic command, printing to `out`.
pub async fn run(command: TopicCommand, env: Env, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            connect,
        } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs: configs.into_iter().collect(),
            };
            let admin = admin(&env, &connect)?;
            admin
                .create_topic(&topic)
                .await
                .map_err(|e| CliError::client(e, Some(&name), &connect))?;
            writeln!(out, "Created topic {name}.")?;
        }
        TopicCommand::List { connect } => {
            let topics = admin(&env, &connect)?
                .list_topics()
                .await
                .map_err(|e| CliError::client(e, None, &connect))?;
            for t in topics {
                writeln!(out, "{}", t.name)?;
            }
        }
        TopicCommand::Describe { name, connect } => {
            let d = admin(&env, &connect)?
                .describe_topic(&name)
                .await
                .map_err(|e| CliError::client(e, Some(&name), &connect))?;
            write!(out, "{}", describe_text(&d))?;
        }
        TopicCommand::Alter {
            name,
            partitions,
            connect,
        } => {
            admin(&env, &connect)?
                .create_partitions(&name, partitions)
                .await
                .map_err(|e| CliError::client(e, Some(&name), &connect))?;
            writeln!(out, "Topic {name} now has {partitions} partitions.")?;
        }
        TopicCommand::Delete { name, connect } => {
            admin(&env, &connect)?
                .delete_topic(&name)
                .await
                .map_err(|e| CliError::client(e, Some(&name), &connect))?;
            writeln!(out, "Deleted topic {name}.")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn admin(env: &Env, connect: &ConnectArgs) -> Result<Admin, CliError> {
    Admin::new(env.clone(), connect.client_config()).map_err(|e| CliError::client(e, None, connect))
}

/// kafka-topics' describe output.
pub fn describe_text(d: &crate::client::TopicDescription) -> String {
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let configs: Vec<String> = d
        .configs
        .iter()
        .filter(|c| c.is_topic_override())
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
        .collect();
    let rf = d.partitions.first().map_or(0, |p| p.replicas.len());
    let mut s = format!(
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        d.name,
        kafka_uuid(&d.topic_id),
        d.partitions.len(),
        rf,
        configs.join(",")
    );
    for p in &d.partitions {
        let leader = p.leader.map_or("none".to_string(), |l| l.to_string());
        s.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
            d.name,
            p.partition,
            leader,
            ids(&p.replicas),
            ids(&p.isr)
        ));
    }
    s
}

/// A topic id as Kafka prints it: URL-safe base64 of the 16 bytes, without padding.
pub fn kafka_uuid(id: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut n = [0u8; 3];
        n[..chunk.len()].copy_from_slice(chunk);
        let v = (u32::from(n[0]) << 16) | (u32::from(n[1]) << 8) | u32::from(n[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::admin::ConfigEntry;
    use crate::client::metadata::PartitionMetadata;

    #[test]
    fn topic_ids_print_as_kafka_prints_them() {
        // Kafka's Uuid.toString of 0x0123456789abcdef_fedcba9876543210.
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(kafka_uuid(&id), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(kafka_uuid(&uuid::Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn describe_looks_like_kafka_topics() {
        let p = |i, leader| PartitionMetadata {
            partition: i,
            leader,
            leader_epoch: 0,
            replicas: vec![1, 2],
            isr: vec![1],
            offline: vec![],
            error: None,
        };
        let d = crate::client::TopicDescription {
            name: "t".into(),
            topic_id: uuid::Uuid::nil(),
            internal: false,
            partitions: vec![p(0, Some(1)), p(1, None)],
            configs: vec![
                ConfigEntry {
                    name: "retention.ms".into(),
                    value: Some("5".into()),
                    source: "DYNAMIC_TOPIC_CONFIG",
                    read_only: false,
                    sensitive: false,
                },
                ConfigEntry {
                    name: "segment.bytes".into(),
                    value: Some("9".into()),
                    source: "DEFAULT_CONFIG",
                    read_only: false,
                    sensitive: false,
                },
            ],
        };
        assert_eq!(
            describe_text(&d),
            "Topic: t\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: retention.ms=5\n\
             \tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1\n\
             \tTopic: t\tPartition: 1\tLeader: none\tReplicas: 1,2\tIsr: 1\n"
        );
    }
}
