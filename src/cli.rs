//! The client commands of the `runnel` binary, named and behaving like Kafka's tools:
//!
//! - `runnel topic create|list|describe|alter|delete` (kafka-topics), in [`topic`];
//! - `runnel cluster describe --status|--replication` (kafka-metadata-quorum), in [`cluster`];
//! - `runnel produce` (kafka-console-producer), in [`produce`];
//! - `runnel consume` (kafka-console-consumer), in [`consume`];
//! - `runnel group list|describe|delete|reset-offsets` (kafka-consumer-groups), in [`group`];
//! - `runnel perf produce|consume` (kafka-producer-perf-test, kafka-consumer-perf-test), in
//!   [`perf`].
//!
//! Every command takes `--bootstrap-server`. A failure prints one line on stderr, the Kafka
//! error name first and then what to do about it, and exits with status 1.

pub mod cluster;
pub mod configs;
pub mod consume;
pub mod group;
pub mod perf;
pub mod produce;
pub mod topic;

use crate::client::{ClientConfig, ClientError};
use crate::env::Env;
use kafka_protocol::error::ResponseError;

/// The client commands, flattened into the binary's command list next to `broker`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Create, list, describe, grow and delete topics (like kafka-topics).
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Describe or change topic and broker configs (like kafka-configs).
    Configs(configs::ConfigsArgs),
    /// Describe the metadata quorum and its replicas (like kafka-metadata-quorum).
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Send each line of stdin as a record (like kafka-console-producer).
    Produce(produce::ProduceArgs),
    /// Print records, one per line (like kafka-console-consumer).
    Consume(consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets (like
    /// kafka-consumer-groups).
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// Measure produce or consume throughput (like kafka-producer-perf-test and
    /// kafka-consumer-perf-test).
    Perf {
        #[command(subcommand)]
        command: perf::PerfCommand,
    },
}

/// Where the cluster is: every command's `--bootstrap-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The broker(s) to connect to first, HOST:PORT (comma-separated for several).
    #[arg(long, value_name = "HOST:PORT", default_value = "localhost:9092")]
    pub bootstrap_server: String,
}

impl ConnectArgs {
    /// The client settings for these servers.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            client_id: "runnel-cli".into(),
            // A person is waiting: give up on an unreachable cluster sooner than a service
            // would (Kafka's default is 60 s).
            default_api_timeout_ms: 15_000,
            ..ClientConfig::new(
                self.bootstrap_server
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty()),
            )
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{error}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Client {
        /// What the client reported.
        error: ClientError,
        /// What the user can do about it.
        hint: Option<String>,
    },
    #[error("{0}")]
    Usage(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// A client error, with advice that fits it (`topic` names the topic the command is
    /// about, for advice like "create it with ...").
    pub fn client(error: ClientError, topic: Option<&str>, args: &ConnectArgs) -> CliError {
        let hint = hint(&error, topic, args);
        CliError::Client { error, hint }
    }
}

/// What to do about an error.
fn hint(e: &ClientError, topic: Option<&str>, args: &ConnectArgs) -> Option<String> {
    let t = topic.unwrap_or("NAME");
    let server = &args.bootstrap_server;
    let text = match e {
        ClientError::Connect { .. } | ClientError::TimedOut { .. } => format!(
            "is a broker running at {server}? Start one with 'runnel broker' or pass --bootstrap-server"
        ),
        ClientError::Timeout { .. } | ClientError::Disconnected { .. } => {
            "the broker may be overloaded or restarting; try again".into()
        }
        ClientError::Corrupt { .. } => {
            "the data read failed its checksum; check the broker's log and disk".into()
        }
        ClientError::UnsupportedVersion { .. } => {
            "the broker is too old or too new for this client".into()
        }
        ClientError::Kafka { code, .. } => return kafka_hint(*code, t),
        _ => return None,
    };
    Some(text)
}

fn kafka_hint(code: ResponseError, t: &str) -> Option<String> {
    let text = match code {
        ResponseError::UnknownTopicOrPartition => {
            format!("create it with 'runnel topic create {t}', or see 'runnel topic list'")
        }
        ResponseError::TopicAlreadyExists => {
            format!("choose another name, or delete it first with 'runnel topic delete {t}'")
        }
        ResponseError::InvalidTopicException => {
            "topic names are 1 to 249 characters of [a-zA-Z0-9._-]".into()
        }
        ResponseError::InvalidPartitions => {
            "give --partitions a number of at least 1, above the current count".into()
        }
        ResponseError::InvalidReplicationFactor => {
            "give --replication-factor at most the number of brokers".into()
        }
        ResponseError::InvalidConfig => "check the --config keys and values".into(),
        ResponseError::TopicDeletionDisabled => "set delete.topic.enable=true on the broker".into(),
        ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge => {
            "send smaller records, or raise max.message.bytes on the topic".into()
        }
        ResponseError::OffsetOutOfRange => {
            "use --from-beginning or an --offset inside the log".into()
        }
        ResponseError::NotEnoughReplicas | ResponseError::NotEnoughReplicasAfterAppend => {
            "wait for replicas to catch up, or use a lower --acks".into()
        }
        ResponseError::InvalidRequiredAcks => "use --acks 0, 1 or all".into(),
        ResponseError::GroupIdNotFound => "see 'runnel group list'".into(),
        ResponseError::NonEmptyGroup => "stop the group's consumers first".into(),
        c if c.is_retriable() => "the cluster is changing; try again".into(),
        _ => return None,
    };
    Some(text)
}

/// Runs a client command; returns the process exit status. Errors are printed on stderr.
pub async fn run(command: ClientCommand, env: Env) -> i32 {
    let result = match command {
        ClientCommand::Topic { command } => topic::run(command, env, &mut std::io::stdout()).await,
        ClientCommand::Cluster { command } => {
            cluster::run(command, env, &mut std::io::stdout()).await
        }
        ClientCommand::Produce(args) => {
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            produce::run(args, env, stdin).await
        }
        ClientCommand::Consume(args) => consume::run(args, env, &mut std::io::stdout()).await,
        ClientCommand::Configs(args) => configs::run(args, env, &mut std::io::stdout()).await,
        ClientCommand::Perf { command } => perf::run(command, env, &mut std::io::stdout()).await,
        ClientCommand::Group { command } => group::run(command, env, &mut std::io::stdout()).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Parses `k=v`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_kafka_error_and_what_to_do() {
        let args = ConnectArgs {
            bootstrap_server: "localhost:9092".into(),
        };
        let e = ClientError::kafka(
            ResponseError::UnknownTopicOrPartition,
            "topic 'x' does not exist",
            None,
        );
        assert_eq!(
            CliError::client(e, Some("x"), &args).to_string(),
            "UNKNOWN_TOPIC_OR_PARTITION: topic 'x' does not exist; create it with 'runnel topic create x', or see 'runnel topic list'"
        );
        let e = ClientError::Connect {
            addr: "localhost:9092".into(),
            reason: "refused".into(),
        };
        assert!(
            CliError::client(e, None, &args)
                .to_string()
                .contains("Start one with 'runnel broker'")
        );
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert!(parse_key_value("=x").is_err());
        let multi = ConnectArgs {
            bootstrap_server: "a:1, b:2".into(),
        }
        .client_config();
        assert_eq!(multi.bootstrap_servers, vec!["a:1", "b:2"]);
    }
}
