//! Append throughput of the partition log against the raw write rate of the same disk,
//! measured in the same run (the machines are shared and noisy, so only ratios mean much).
//!
//! 1 KiB records in 16 KiB batches. Three measurements, interleaved over several rounds:
//! - `plain write`: the same batch bytes written with sequential `write` calls to one file;
//! - `log append, no sync`: `PartitionLog::append` with write caching on (no fsync);
//! - `group commit`: many concurrent appenders, each waiting until its batch is synced (the
//!   durable default for acks=all), sharing fsyncs.
//!
//! Targets: append ≥ 0.8 × plain write; group commit ≥ 0.5 × append.
//!
//! Run: `cargo bench --bench log_append` (`RUNNEL_BENCH_MB`, `RUNNEL_BENCH_ROUNDS`,
//! `RUNNEL_BENCH_APPENDERS` to change the size, rounds and concurrency).

use runnel::env::{Env, RealDisk};
use runnel::log::{LogConfig, PartitionLog};
use runnel::record::batch::{NewRecord, ProducerFields, encode_batch};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn template() -> Vec<u8> {
    let records: Vec<NewRecord> = (0..16)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i,
            key: None,
            value: Some(vec![b'x'; 1024]),
            headers: vec![],
        })
        .collect();
    encode_batch(&records, ProducerFields::NONE)
}

/// Bytes per second of plain sequential writes of `n` copies of `batch`.
fn plain_write(dir: &Path, batch: &[u8], n: u64) -> f64 {
    let path = dir.join("plain");
    let mut f = std::fs::File::create(&path).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(batch).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    f.sync_all().unwrap();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    (batch.len() as u64 * n) as f64 / secs
}

/// Bytes per second of the same writes with an fdatasync after every MiB: what the disk can
/// make durable at the granularity group commit works at.
fn synced_write(dir: &Path, batch: &[u8], n: u64) -> f64 {
    let path = dir.join("synced");
    let mut f = std::fs::File::create(&path).unwrap();
    let per_sync = ((1 << 20) / batch.len() as u64).max(1);
    let start = Instant::now();
    for i in 1..=n {
        f.write_all(batch).unwrap();
        if i % per_sync == 0 || i == n {
            f.sync_data().unwrap();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    (batch.len() as u64 * n) as f64 / secs
}

async fn open_log(dir: &Path, write_caching: bool) -> Arc<PartitionLog> {
    let env = Env::with_disk(Arc::new(RealDisk), 1);
    let cfg = LogConfig {
        write_caching,
        ..LogConfig::default()
    };
    PartitionLog::open(&env, &dir.join("bench-0"), cfg)
        .await
        .unwrap()
}

async fn cleanup(dir: &Path, log: Arc<PartitionLog>) {
    log.close().await.unwrap();
    drop(log);
    std::fs::remove_dir_all(dir.join("bench-0")).unwrap();
}

/// Bytes per second of `n` appends with no sync.
async fn append_no_sync(dir: &Path, batch: &[u8], n: u64) -> f64 {
    let log = open_log(dir, true).await;
    let start = Instant::now();
    for _ in 0..n {
        let mut b = batch.to_vec();
        log.append(&mut b, 0).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    cleanup(dir, log).await;
    (batch.len() as u64 * n) as f64 / secs
}

/// Bytes per second of `n` appends by `appenders` concurrent tasks, each waiting for its
/// batch to be synced before appending the next. Also returns the number of syncs per append.
async fn group_commit(dir: &Path, batch: &[u8], n: u64, appenders: u64) -> f64 {
    let log = open_log(dir, false).await;
    let left = Arc::new(AtomicU64::new(n));
    let batch = Arc::new(batch.to_vec());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let (log, left, batch) = (log.clone(), left.clone(), batch.clone());
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
            {
                let mut b = batch.to_vec();
                let info = log.append(&mut b, 0).unwrap();
                assert!(log.must_sync(&info, true));
                log.sync_to(info.last_offset + 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let rounds = log.sync_rounds();
    cleanup(dir, log).await;
    println!(
        "  group commit: {n} durable appends in {rounds} fsync rounds ({:.1} appends per fsync)",
        n as f64 / rounds as f64
    );
    (batch.len() as u64 * n) as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // Under `cargo bench`, a filter argument may follow; a bare `--bench` is all we expect.
    let mb = env_or("RUNNEL_BENCH_MB", 512);
    let rounds = env_or("RUNNEL_BENCH_ROUNDS", 3).max(1);
    let appenders = env_or("RUNNEL_BENCH_APPENDERS", 256);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&root).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir_in(&root)
        .unwrap();
    let batch = template();
    let n = (mb << 20) / batch.len() as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "log_append: {n} batches of {} bytes (16 x 1 KiB records), {:.0} MiB per run, {rounds} rounds, {appenders} durable appenders",
        batch.len(),
        (n * batch.len() as u64) as f64 / (1 << 20) as f64
    );
    let mib = |x: f64| x / (1 << 20) as f64;
    let (mut plain, mut append, mut synced, mut group) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let p = plain_write(tmp.path(), &batch, n);
        let a = rt.block_on(append_no_sync(tmp.path(), &batch, n));
        let s = synced_write(tmp.path(), &batch, n);
        let g = rt.block_on(group_commit(tmp.path(), &batch, n, appenders));
        println!(
            "round {round}: plain write {:7.1} | log append {:7.1} | write+fdatasync/MiB {:7.1} | group commit {:7.1} MiB/s",
            mib(p),
            mib(a),
            mib(s),
            mib(g)
        );
        plain.push(p);
        append.push(a);
        synced.push(s);
        group.push(g);
    }
    let (p, a, s, g) = (median(plain), median(append), median(synced), median(group));
    println!(
        "median: plain write {:.1}, log append {:.1}, write+fdatasync/MiB {:.1}, group commit {:.1} MiB/s",
        mib(p),
        mib(a),
        mib(s),
        mib(g)
    );
    println!(
        "ratio append / plain write            = {:.2} (target >= 0.80)",
        a / p
    );
    println!(
        "ratio group commit / append           = {:.2} (target >= 0.50)",
        g / a
    );
    println!(
        "ratio group commit / disk synced rate = {:.2} (what the disk allows)",
        g / s
    );
    println!(
        "ratio disk synced rate / append       = {:.2} (the ceiling for group commit / append)",
        s / a
    );
}
