//! The simulator in CI: a fixed range of seeds and every regression seed must pass, seeds must
//! replay to the same trace (in one process and across processes), and a planted bug must be
//! caught. `docs/simulation.md` explains what a seed runs and how to read a failure.

use runnel_sim::run::{Outcome, PlantedBug, RunOptions, SeedResult, run_seeds};
use std::process::Command;

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
                if opts.planted_bug.is_some() {
                    " --planted-bug lying-fsync"
                } else {
                    ""
                }
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

#[test]
fn the_checker_catches_a_lying_fsync() {
    // fsync reports success and syncs nothing; the run forces a power loss. The checker must
    // name lost acknowledged writes on nearly every seed (a seed that promised nothing durable
    // before the power went has nothing to lose).
    let seeds: Vec<u64> = (0..24).collect();
    let opts = RunOptions {
        planted_bug: Some(PlantedBug::LyingFsync),
        ..RunOptions::default()
    };
    let mut caught = Vec::new();
    let mut missed = Vec::new();
    run_seeds(&seeds, &opts, jobs(), false, |r| match &r.outcome {
        Outcome::Safety(anomalies)
            if anomalies
                .iter()
                .any(|a| a.kind.to_string() == "lost-write" && a.detail.contains("producer-")) =>
        {
            caught.push(r.seed)
        }
        _ => missed.push((r.seed, r.outcome.summary())),
    });
    assert!(
        caught.len() * 10 >= seeds.len() * 8,
        "the planted bug was caught on only {} of {} seeds; missed: {missed:?}",
        caught.len(),
        seeds.len()
    );
}
