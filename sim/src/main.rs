//! `runnel-sim`: runs seeds of the simulation and reports each failure with the command that
//! replays it.
//!
//! Exit codes: 0 all passed; 2 a safety violation (the checker found an anomaly); 3 a liveness
//! violation (after the faults ended, the system did not make progress in time); 4 a panic in
//! the simulated code; 5 the same seed gave two different traces; 64 bad arguments.

use clap::Parser;
use runnel_sim::run::{PlantedBug, RunOptions, run_seeds};
use std::process::ExitCode;

/// mimalloc: a seed allocates and frees small objects all the time (messages, batches, history
/// entries); glibc's allocator was a tenth of a run's CPU time, mimalloc about half of that.
/// The allocator never changes a result (nothing depends on addresses).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "runnel-sim",
    about = "runnel's deterministic simulator: faults from a seed, checked histories"
)]
struct Args {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, A..B (B excluded).
    #[arg(long, value_name = "A..B")]
    seeds: Option<String>,
    /// Run each seed twice in this process and fail if the two traces differ.
    #[arg(long)]
    check_determinism: bool,
    /// Plant a known bug, to show the checker catches it (the run steers the seed's faults
    /// and settings toward what exposes it).
    #[arg(long, value_name = "BUG", value_enum)]
    planted_bug: Option<PlantedBug>,
    /// With --planted-bug: steer the seed as for that bug but leave the bug out (the steered
    /// runs must pass: what fails with the bug fails because of it).
    #[arg(long, requires = "planted_bug")]
    steer_only: bool,
    /// Pass over anomalies of this kind (as reported, e.g. `metadata-invariant`; repeatable):
    /// the run goes on, to show what else a bug breaks.
    #[arg(long, value_name = "KIND")]
    ignore_anomaly: Vec<String>,
    /// Print the whole event trace.
    #[arg(long)]
    verbose: bool,
    /// Seeds to run at once, one thread each (default: the machine's cores). Each seed is
    /// its own simulation, so this changes only the wall time, never a result.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Print every seed's trace hash (`seed N: HASH`), passing or not, to compare two builds
    /// seed by seed.
    #[arg(long)]
    print_hashes: bool,
}

fn parse_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once("..")?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some((a, b))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            // Help and version are not errors; anything else is a bad argument (exit 64, so
            // it is never mistaken for a failed seed).
            return if e.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // RUST_LOG shows the simulated broker's and clients' own logs, stamped with the simulated
    // time (as the trace is).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_timer(SimTime)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let planted_bug = args.planted_bug;
    let (from, to, single) = match (args.seed, args.seeds.as_deref()) {
        (Some(s), None) => (s, s + 1, true),
        (None, Some(r)) => match parse_range(r) {
            Some((a, b)) => (a, b, false),
            None => {
                eprintln!("--seeds takes A..B with A < B, got '{r}'");
                return ExitCode::from(64);
            }
        },
        _ => {
            eprintln!("give --seed N or --seeds A..B");
            return ExitCode::from(64);
        }
    };
    let opts = RunOptions {
        planted_bug,
        steer_only: args.steer_only,
        ignore: args.ignore_anomaly.clone(),
        verbose: args.verbose,
        quiet: !single,
    };
    let mut flags = String::new();
    if let Some(b) = args.planted_bug {
        flags.push_str(&format!(" --planted-bug {}", b.name()));
    }
    if args.steer_only {
        flags.push_str(" --steer-only");
    }
    for k in &args.ignore_anomaly {
        flags.push_str(&format!(" --ignore-anomaly {k}"));
    }
    if args.check_determinism {
        flags.push_str(" --check-determinism");
    }
    let reproduce =
        |seed: u64| format!("reproduce: cargo run --release -p runnel-sim -- --seed {seed}{flags}");
    let mut worst = 0u8;
    let mut failures: Vec<(u64, String)> = Vec::new();
    let mut passed = 0u64;
    let mut sim_secs = 0.0;
    let started = std::time::Instant::now();
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let seeds: Vec<u64> = (from..to).collect();
    run_seeds(&seeds, &opts, jobs, args.check_determinism, |r| {
        print!("{}", r.report);
        if args.print_hashes {
            println!("seed {}: {:016x}", r.seed, r.trace_hash);
        }
        sim_secs += r.simulated.as_secs_f64();
        let code = r.exit_code();
        if code == 0 {
            passed += 1;
        } else {
            if r.second_hash.is_some() {
                println!("seed {}: {}", r.seed, r.summary());
            }
            println!("{}", reproduce(r.seed));
            failures.push((r.seed, r.summary()));
            worst = worst.max(code);
        }
    });
    if !single {
        let wall = started.elapsed().as_secs_f64();
        println!(
            "\n{passed} passed, {} failed of {} seeds ({:.0} simulated seconds in {:.1} s: {:.1} simulated s per wall s)",
            failures.len(),
            to - from,
            sim_secs,
            wall,
            sim_secs / wall.max(1e-9)
        );
        for (seed, what) in &failures {
            println!("  seed {seed}: {what}\n    {}", reproduce(*seed));
        }
    }
    ExitCode::from(worst)
}

/// Stamps log lines with the simulated time, in seconds, as the trace prints it.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:10.6}", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}
