//! The simulator in CI: a fixed range of seeds and every regression seed must pass, seeds must
//! replay to the same trace (in one process and across processes), and a planted bug must be
//! caught. `docs/simulation.md` explains what a seed runs and how to read a failure.

use runnel_sim::run::{Outcome, PlantedBug, RunOptions, SeedResult, run_seeds};
use std::process::Command;

/// The simulator's allocator, as in `runnel-sim` (see `src/main.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The fixed range every CI run sweeps.
const RANGE: std::ops::Range<u64> = 0..300;
/// Seeds also run twice in one process, to compare their traces.
const DETERMINISM: std::ops::Range<u64> = 0..8;

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The seeds listed in `regression-seeds.txt`.
fn regression_seeds() -> Vec<u64> {
    let text = include_str!("regression-seeds.txt");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap_or_else(|_| panic!("bad seed line '{l}'")))
        .collect()
}

/// Runs `seeds` and returns one line per failure, with its reproduce command, plus the total
/// simulated seconds.
fn sweep(seeds: &[u64], opts: &RunOptions, determinism: &[u64]) -> (Vec<String>, f64) {
    let mut failures = Vec::new();
    let mut simulated = 0.0;
    let mut check = |r: SeedResult| {
        simulated += r.simulated.as_secs_f64();
        if r.exit_code() != 0 {
            failures.push(format!(
                "seed {}: {}\n{}    reproduce: cargo run --release -p runnel-sim -- --seed {}{}",
                r.seed,
                r.summary(),
                r.report,
                r.seed,
                opts.planted_bug
                    .map(|b| format!(" --planted-bug {}", b.name()))
                    .unwrap_or_default()
            ));
        }
    };
    let (twice, once): (Vec<u64>, Vec<u64>) = seeds.iter().partition(|s| determinism.contains(s));
    run_seeds(&twice, opts, jobs(), true, &mut check);
    run_seeds(&once, opts, jobs(), false, &mut check);
    (failures, simulated)
}

#[test]
fn a_fixed_range_and_every_regression_seed_pass() {
    let mut seeds: Vec<u64> = RANGE.chain(regression_seeds()).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let started = std::time::Instant::now();
    let determinism: Vec<u64> = DETERMINISM.collect();
    let (failures, simulated) = sweep(&seeds, &RunOptions::default(), &determinism);
    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "{} seeds ({} twice for determinism): {simulated:.0} simulated s in {wall:.1} s, {:.1} simulated s per wall s",
        seeds.len(),
        determinism.len(),
        simulated / wall.max(1e-9)
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

/// The trace hash `runnel-sim --seed N` prints.
fn trace_hash_in_a_new_process(seed: u64) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_runnel-sim"))
        .args(["--seed", &seed.to_string()])
        .output()
        .expect("run runnel-sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "seed {seed} failed:\n{stdout}");
    assert!(
        stdout.starts_with(&format!("seed: {seed}\n")),
        "the seed comes first:\n{stdout}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace hash: "))
        .unwrap_or_else(|| panic!("no trace hash in:\n{stdout}"))
        .to_string()
}

#[test]
fn a_seed_replays_to_the_same_trace_in_another_process() {
    for seed in [7, 1234] {
        let a = trace_hash_in_a_new_process(seed);
        let b = trace_hash_in_a_new_process(seed);
        assert_eq!(a, b, "seed {seed}: two processes, two traces");
        let mut here = None;
        run_seeds(&[seed], &RunOptions::default(), 1, false, |r| {
            here = Some(format!("{:016x}", r.trace_hash))
        });
        assert_eq!(
            here.as_deref(),
            Some(a.as_str()),
            "seed {seed}: the library and the binary differ"
        );
    }
}

/// What each planted bug must be caught as: the anomaly kinds that name it.
fn caught_as(bug: PlantedBug) -> &'static [&'static str] {
    match bug {
        PlantedBug::LyingFsync => &["lost-write"],
        PlantedBug::LyingDirSync => &["lost-write", "damaged-file"],
        PlantedBug::EarlyAck => &["unsynced-ack"],
        PlantedBug::RenameBeforeSync => &["damaged-file"],
        PlantedBug::ForgetProducerState => &["producer-state-lost"],
        PlantedBug::KeepTornBatch => &["torn-batch-kept"],
        PlantedBug::CommitBeforeSync => &["unsynced-commit", "lost-commit"],
        PlantedBug::VoteNotSynced => &["damaged-file", "epoch-regression", "two-leaders"],
        PlantedBug::RaftTruncateToHw => &["committed-lost"],
        PlantedBug::StaleSnapshot => &["metadata-invariant"],
        PlantedBug::ElectOutsideIsr => &[
            "metadata-invariant",
            "two-leaders",
            "committed-truncated",
            "replicas-diverge",
            "lost-write",
        ],
        PlantedBug::HwIgnoresFollowers => &[
            "lost-write",
            "inconsistent-offsets",
            "unsynced-ack",
            "under-replicated-ack",
            "committed-truncated",
            "replicas-diverge",
        ],
        PlantedBug::AckBeforeIsr => &["under-replicated-ack"],
        PlantedBug::ReplicaTruncateToHw => &["committed-truncated"],
        PlantedBug::IsrJoinWithoutEpochStart => &["early-isr-join"],
        PlantedBug::HwFromUnsyncedOffset => &["under-replicated-ack", "early-isr-join"],
        PlantedBug::SyncedEndIgnored => &["under-replicated-ack", "early-isr-join"],
        PlantedBug::Rf1HwFromLogEnd => &["unsynced-ack"],
        PlantedBug::FollowBeforeResign => &["under-replicated-ack"],
        PlantedBug::LeaseIgnored => &["lost-commit", "double-assignment"],
        // A leader that forgot a follower it added lets the high watermark pass it; elected
        // from the ISR, that follower then cuts what was committed.
        PlantedBug::UnknownIsrAnswerAsRefused => &[
            "early-isr-join",
            "committed-truncated",
            "replicas-diverge",
            "lost-write",
        ],
    }
}

#[test]
fn a_leader_elected_outside_the_isr_loses_committed_records() {
    // Past the metadata invariant that catches `elect-outside-isr` first, the data checks see
    // what it does: committed batches cut from the replicas' logs (the state checker), and
    // offsets read with two values (the history checker).
    let opts = RunOptions {
        planted_bug: Some(PlantedBug::ElectOutsideIsr),
        ignore: vec!["metadata-invariant".into()],
        quiet: true,
        ..RunOptions::default()
    };
    let mut lost = Vec::new();
    run_seeds(&[0, 1, 4, 5], &opts, jobs(), false, |r| {
        if let Outcome::Safety(anomalies) = &r.outcome
            && anomalies.iter().any(|a| {
                ["committed-truncated", "lost-write", "inconsistent-offsets"]
                    .contains(&a.kind.to_string().as_str())
            })
        {
            lost.push(r.seed);
        }
    });
    assert!(
        lost.len() >= 3,
        "committed records lost on seeds {lost:?} only"
    );
}

#[test]
fn the_steering_alone_breaks_no_promise() {
    // What a planted bug's run fails with must be the bug's doing: the same seeds steered the
    // same way, without the bug, pass.
    let mut report = Vec::new();
    for bug in PlantedBug::ALL {
        let opts = RunOptions {
            planted_bug: Some(bug),
            steer_only: true,
            quiet: true,
            ..RunOptions::default()
        };
        run_seeds(&[0], &opts, jobs(), false, |r| {
            if !matches!(r.outcome, Outcome::Pass) {
                report.push(format!(
                    "{} steered, seed {}: {}",
                    bug.name(),
                    r.seed,
                    r.outcome.summary()
                ));
            }
        });
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn the_checker_catches_every_planted_bug() {
    // Each bug on a few seeds: the run must fail with the anomaly that names the bug (so a
    // checker change that blinds one fails the build), and replay to the same failure.
    // `docs/simulation.md` has the rates over longer ranges.
    let seeds: Vec<u64> = (0..5).collect();
    let mut report = Vec::new();
    for bug in PlantedBug::ALL {
        let opts = RunOptions {
            planted_bug: Some(bug),
            quiet: true,
            ..RunOptions::default()
        };
        let mut caught = Vec::new();
        let mut missed = Vec::new();
        run_seeds(&seeds, &opts, jobs(), true, |r| match &r.outcome {
            Outcome::Safety(anomalies)
                if anomalies
                    .iter()
                    .any(|a| caught_as(bug).contains(&a.kind.to_string().as_str())) =>
            {
                // The determinism check re-ran it: a failing seed reports a second hash only
                // when the outcome differed, which the exit code shows as nondeterminism.
                assert!(
                    r.second_hash.is_none(),
                    "{}: seed {} failed differently when run again",
                    bug.name(),
                    r.seed
                );
                caught.push(r.seed)
            }
            _ => missed.push((r.seed, r.outcome.summary())),
        });
        if caught.len() + 1 < seeds.len() {
            report.push(format!(
                "{}: caught on {} of {} seeds; missed: {missed:?}",
                bug.name(),
                caught.len(),
                seeds.len()
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}
