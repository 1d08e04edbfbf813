//! The `runnel` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use runnel::config::{BrokerConfig, CliOverrides};
use runnel::env::Env;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "runnel",
    version,
    about = "A Kafka-compatible commit log, tested by deterministic simulation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker.
    Broker {
        /// Data directory (Kafka's log.dirs) [default: ./runnel-data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on, HOST:PORT [default: 127.0.0.1:9092]
        #[arg(long)]
        listen: Option<String>,
        /// Address Metadata tells clients to dial, HOST:PORT [default: the listen address]
        #[arg(long)]
        advertised: Option<String>,
        /// A Kafka-style server.properties file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A setting by Kafka's name, over the file (repeatable): --override log.retention.ms=60000
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    #[command(flatten)]
    Client(runnel::cli::ClientCommand),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Broker {
            data_dir,
            listen,
            advertised,
            config,
            overrides,
        } => {
            let properties = match &config {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                None => None,
            };
            let cli = CliOverrides {
                listen,
                advertised,
                data_dir,
            };
            let (config, warnings) = BrokerConfig::load(properties.as_deref(), &overrides, &cli)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            rt.block_on(run_broker(config))
        }
        Command::Client(command) => {
            std::process::exit(rt.block_on(runnel::cli::run(command, Env::real())))
        }
    }
}

async fn run_broker(config: BrokerConfig) -> anyhow::Result<()> {
    let data_dir = config.log_dir.clone();
    let settings: Vec<String> = config
        .non_default_settings()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let running = runnel::broker::start(Env::real(), config)
        .await
        .context("starting the broker")?;
    tracing::info!(
        listener = %running.local_addr,
        advertised = %running.broker.config.advertised,
        data_dir = %data_dir.display(),
        non_default = %settings.join(" "),
        "runnel broker started"
    );
    let handle = running.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests, syncing logs");
        let _ = handle.send(true);
    });
    running.wait().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
