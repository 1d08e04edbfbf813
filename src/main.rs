//! The `runnel` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use runnel::config::BrokerConfig;
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
        /// Data directory (Kafka's log.dirs).
        #[arg(long, default_value = "./runnel-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: String,
        /// Address Metadata tells clients to dial (defaults to the listen address).
        #[arg(long)]
        advertised: Option<String>,
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
        } => rt.block_on(async {
            let config = BrokerConfig {
                log_dir: data_dir,
                advertised: advertised.unwrap_or_else(|| listen.clone()),
                listen,
                ..BrokerConfig::default()
            };
            let running = runnel::broker::start(Env::real(), config)
                .await
                .context("starting the broker")?;
            let handle = running.shutdown_handle();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                let _ = handle.send(true);
            });
            running.wait().await;
            tracing::info!("stopped");
            Ok(())
        }),
        Command::Client(command) => {
            std::process::exit(rt.block_on(runnel::cli::run(command, Env::real())))
        }
    }
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
