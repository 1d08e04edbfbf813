//! The seam, proven: runnel's partition log runs unchanged on a turmoil host with turmoil's
//! simulated filesystem, and keeps its promises across crashes, power losses, torn writes and
//! random partial syncs, for every seed in a range.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runnel::env::SharedRng;
use runnel::log::{LogConfig, PartitionLog};
use runnel::record::batch::{self, NewRecord, ProducerFields};
use runnel_sim::env::{DiskFaults, epoch, sim_env};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DIR: &str = "/data/t-0";

fn encode(values: &[Vec<u8>]) -> Vec<u8> {
    let recs: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(v.clone()),
            headers: vec![],
        })
        .collect();
    batch::encode_batch(&recs, ProducerFields::NONE)
}

/// The record values of every batch in the log, from the start.
fn read_all(log: &PartitionLog) -> Vec<(i64, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.log_end_offset() {
        let r = log.read(off, 1 << 20, i64::MAX, true).expect("read");
        let mut p = 0;
        while p < r.records.len() {
            let h = batch::check_integrity(&r.records[p..]).expect("CRC holds on every read");
            let body = batch::records_body(&h, &r.records[p..p + h.total_len()]).unwrap();
            let values = batch::RecordIter::new(&h, &body)
                .map(|rec| rec.unwrap().value.unwrap().to_vec())
                .collect();
            out.push((h.base_offset, values));
            off = h.next_offset();
            p += h.total_len();
        }
    }
    out
}

#[test]
fn the_log_runs_on_a_turmoil_host() {
    let mut sim = turmoil::Builder::new().epoch(epoch()).rng_seed(1).build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    sim.client("node", async move {
        let env = sim_env(
            DiskFaults::default(),
            SharedRng::seeded(1),
            SharedRng::seeded(2),
            None,
        );
        let log = PartitionLog::open(&env, Path::new(DIR), LogConfig::default()).await?;
        let info = log.append(&mut encode(&[b"a".to_vec(), b"b".to_vec()]), 0)?;
        log.sync_to(info.last_offset + 1).await?;
        log.close().await?;
        let log = PartitionLog::open(&env, Path::new(DIR), LogConfig::default()).await?;
        *seen2.lock().unwrap() = read_all(&log);
        Ok(())
    });
    sim.run().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(0, vec![b"a".to_vec(), b"b".to_vec()])]
    );
}

/// What the node wrote, as the test outside the simulation keeps it.
#[derive(Default)]
struct Model {
    /// Batches appended, by base offset, whether or not they survived.
    written: Vec<(i64, Vec<Vec<u8>>)>,
    /// Everything below this offset was reported synced.
    synced: i64,
    /// How many times the node started (and checked what it found).
    starts: u32,
    /// Broken promises.
    violations: Vec<String>,
    /// Records appended over the run.
    appended: u64,
}

fn check_after_start(model: &mut Model, found: Vec<(i64, Vec<Vec<u8>>)>, end: i64) {
    if end < model.synced {
        model.violations.push(format!(
            "lost synced data: log ends at {end}, {} was synced",
            model.synced
        ));
    }
    let written_end = model.written.last().map_or(0, |(b, v)| b + v.len() as i64);
    if end > written_end {
        model.violations.push(format!(
            "log ends at {end}, beyond all writes ({written_end})"
        ));
    }
    for (i, (base, values)) in found.iter().enumerate() {
        match model.written.get(i) {
            Some((b, v)) if b == base && v == values => {}
            other => model.violations.push(format!(
                "batch {i} at {base} is {values:?}, wrote {other:?}"
            )),
        }
    }
    model.written.truncate(found.len());
    model.synced = end;
}

fn run_seed(seed: u64) -> Result<(u64, u32), String> {
    let mut choose = StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let block = [1u64, 7, 64, 512, 4096][choose.random_range(0..5)];
    let sync_probability = [0.0, 0.02, 0.2][choose.random_range(0..3)];
    let cfg = LogConfig {
        segment_bytes: choose.random_range(300..4000),
        index_interval_bytes: choose.random_range(1..600),
        flush_messages: if choose.random_bool(0.3) {
            choose.random_range(1..8)
        } else {
            i64::MAX
        },
        write_caching: choose.random_bool(0.5),
        ..LogConfig::default()
    };
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .epoch(epoch())
        .simulation_duration(Duration::from_secs(3600))
        .tick_duration(Duration::from_millis(1));
    b.fs().block_size(block).sync_probability(sync_probability);
    let mut sim = b.build();
    let model = Arc::new(Mutex::new(Model::default()));
    let m = model.clone();
    sim.host("node", move || {
        let model = m.clone();
        let cfg = cfg.clone();
        async move {
            let start = {
                let mut md = model.lock().unwrap();
                md.starts += 1;
                md.starts
            };
            let rng = SharedRng::seeded(seed ^ (u64::from(start) << 32));
            let env = sim_env(DiskFaults::default(), rng.fork(), rng.fork(), None);
            let log = PartitionLog::open(&env, Path::new(DIR), cfg).await?;
            {
                let found = read_all(&log);
                let mut md = model.lock().unwrap();
                check_after_start(&mut md, found, log.log_end_offset());
            }
            let mut n = 0u64;
            loop {
                n += 1;
                let count = rng.gen_range(1..5) as usize;
                let values: Vec<Vec<u8>> = (0..count)
                    .map(|i| format!("{start}-{n}-{i}").into_bytes())
                    .collect();
                let info = log.append(&mut encode(&values), 0)?;
                {
                    let mut md = model.lock().unwrap();
                    md.written.push((info.first_offset, values));
                    md.appended += count as u64;
                }
                if log.must_sync(&info, rng.gen_bool(0.3)) {
                    log.sync_to(info.last_offset + 1).await?;
                    let mut md = model.lock().unwrap();
                    md.synced = md.synced.max(info.last_offset + 1);
                }
                if rng.gen_bool(0.03) {
                    log.force_roll()?;
                }
                if rng.gen_bool(0.02) {
                    log.checkpoint().await?;
                }
                tokio::time::sleep(Duration::from_micros(rng.gen_range(0..3000))).await;
            }
        }
    });
    let crashes = choose.random_range(2..7);
    for _ in 0..crashes {
        for _ in 0..choose.random_range(1..300) {
            sim.step().map_err(|e| format!("seed {seed}: {e}"))?;
        }
        // Power loss: unsynced writes are lost or torn at the block size.
        sim.crash("node");
        sim.bounce("node");
    }
    for _ in 0..20 {
        sim.step().map_err(|e| format!("seed {seed}: {e}"))?;
    }
    let md = model.lock().unwrap();
    if !md.violations.is_empty() {
        return Err(format!("seed {seed}: {:#?}", md.violations));
    }
    if md.starts != crashes + 1 {
        return Err(format!(
            "seed {seed}: node started {} times for {crashes} crashes",
            md.starts
        ));
    }
    Ok((md.appended, md.starts))
}

/// Torn writes and random partial syncs: after every power loss, the log is a prefix of what
/// was written that holds at least everything synced.
#[test]
fn power_loss_keeps_the_prefix_property_for_every_seed() {
    let mut failures = Vec::new();
    let mut appended = 0;
    for seed in 0..250 {
        match run_seed(seed) {
            Ok((n, _)) => appended += n,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        appended > 10_000,
        "the workload did too little: {appended} records"
    );
}

#[test]
fn a_seed_replays_exactly() {
    assert_eq!(run_seed(17), run_seed(17));
    assert_eq!(run_seed(123), run_seed(123));
}
