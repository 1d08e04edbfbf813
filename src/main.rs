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
    /// Tools for trying runnel out on one machine.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    #[command(flatten)]
    Client(runnel::cli::ClientCommand),
}

#[derive(Subcommand)]
enum DevCommand {
    /// Start a cluster of combined broker+controller processes on this machine, print its
    /// bootstrap servers, and stop them all (cleanly) on Ctrl-C. Node i (1..=N) listens for
    /// clients on PORT+i-1 and for the quorum on CONTROLLER_PORT+i-1, with its data in
    /// DATA_DIR/node-i, so running it again resumes the same cluster.
    Cluster {
        /// How many nodes (all of them voters of the metadata quorum).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
        nodes: u16,
        /// Where the nodes keep their data.
        #[arg(long, default_value = "runnel-dev-cluster")]
        data_dir: PathBuf,
        /// The first node's client (PLAINTEXT) port.
        #[arg(long, default_value_t = 9092)]
        port: u16,
        /// The first node's CONTROLLER port.
        #[arg(long, default_value_t = 19092)]
        controller_port: u16,
        /// A setting by Kafka's name for every node (repeatable), as `broker --override`.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
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
        Command::Dev {
            command:
                DevCommand::Cluster {
                    nodes,
                    data_dir,
                    port,
                    controller_port,
                    overrides,
                },
        } => rt.block_on(dev_cluster(
            nodes,
            &data_dir,
            port,
            controller_port,
            &overrides,
        )),
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

/// The overrides that make node `id` (1-based) of an `n`-node cluster on loopback.
fn dev_node_overrides(id: u16, n: u16, port: u16, controller_port: u16) -> Vec<String> {
    let voters: Vec<String> = (1..=n)
        .map(|i| format!("{i}@127.0.0.1:{}", controller_port + i - 1))
        .collect();
    vec![
        format!("node.id={id}"),
        "process.roles=broker,controller".to_string(),
        format!("controller.quorum.voters={}", voters.join(",")),
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            port + id - 1,
            controller_port + id - 1
        ),
        "controller.listener.names=CONTROLLER".to_string(),
    ]
}

/// `runnel dev cluster`: starts `n` nodes as child processes of this one (their logs go to
/// `DATA_DIR/node-i.log`), waits for Ctrl-C or SIGTERM, then stops them with SIGTERM (a
/// controlled shutdown each) and waits for them. A node that exits early leaves the rest
/// running.
async fn dev_cluster(
    n: u16,
    data_dir: &std::path::Path,
    port: u16,
    controller_port: u16,
    extra: &[String],
) -> anyhow::Result<()> {
    if u32::from(port) + u32::from(n) > 65536 || u32::from(controller_port) + u32::from(n) > 65536 {
        anyhow::bail!("the ports of {n} nodes do not fit below 65536");
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let exe = std::env::current_exe().context("finding the runnel executable")?;
    let mut children = Vec::new();
    for id in 1..=n {
        let log_path = data_dir.join(format!("node-{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("broker")
            .arg("--data-dir")
            .arg(data_dir.join(format!("node-{id}")));
        for o in dev_node_overrides(id, n, port, controller_port)
            .iter()
            .chain(extra)
        {
            cmd.arg("--override").arg(o);
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        eprintln!(
            "node {id}: client listener 127.0.0.1:{}, controller 127.0.0.1:{}, log {}",
            port + id - 1,
            controller_port + id - 1,
            log_path.display()
        );
        children.push((id, child));
    }
    let bootstrap: Vec<String> = (0..n).map(|i| format!("127.0.0.1:{}", port + i)).collect();
    println!("{}", bootstrap.join(","));
    eprintln!(
        "bootstrap servers: {} (try: runnel cluster describe --bootstrap-server {}); Ctrl-C stops the cluster",
        bootstrap.join(","),
        bootstrap[0]
    );
    // A node that dies (kill -9 it to watch a failover) leaves the others running; the
    // command to start it again is printed. Ctrl-C or SIGTERM stops whatever still runs.
    let mut running: Vec<u16> = (1..=n).collect();
    let signal = wait_for_signal();
    tokio::pin!(signal);
    while !running.is_empty() {
        let waits = children
            .iter_mut()
            .filter(|(id, _)| running.contains(id))
            .map(|(id, c)| {
                let id = *id;
                Box::pin(async move { (id, c.wait().await) })
            });
        tokio::select! {
            _ = &mut signal => break,
            ((id, status), _, _) = futures_util::future::select_all(waits) => {
                running.retain(|r| *r != id);
                let mut again = format!("{} broker --data-dir {}", exe.display(), data_dir.join(format!("node-{id}")).display());
                for o in dev_node_overrides(id, n, port, controller_port).iter().chain(extra) {
                    again.push_str(&format!(" --override {o}"));
                }
                eprintln!(
                    "node {id} exited ({}); the others keep running. To start it again, in another terminal:\n  {again}",
                    status.map_or_else(|e| e.to_string(), |s| s.to_string())
                );
            }
        }
    }
    if running.is_empty() {
        anyhow::bail!(
            "every node has exited; see their logs in {}",
            data_dir.display()
        );
    }
    eprintln!("stopping the cluster");
    for (id, c) in &children {
        if let (true, Some(pid)) = (running.contains(id), c.id()) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for (id, c) in &mut children {
        if !running.contains(id) {
            continue;
        }
        match c.wait().await {
            Ok(s) if s.success() => eprintln!("node {id} stopped cleanly"),
            Ok(s) => eprintln!("node {id} exited with {s}"),
            Err(e) => eprintln!("node {id}: {e}"),
        }
    }
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
