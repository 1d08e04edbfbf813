//! runnel's client runs unchanged on a turmoil host: it reaches the broker only through the
//! seam, and its timeouts and reconnects carry it across a network partition (in turmoil 0.7 a
//! partition stalls TCP streams forever, so without them it would hang).

use runnel::client::{
    Acks, Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use runnel::config::BrokerConfig;
use runnel::env::SharedRng;
use runnel_sim::env::{DiskFaults, epoch, sim_env};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const RECORDS: u32 = 40;

fn client_config() -> ClientConfig {
    ClientConfig {
        request_timeout_ms: 3000,
        ..ClientConfig::new(["broker:9092"])
    }
}

/// Produces `RECORDS` keyed records, one at a time, counting acknowledgements in `acked`;
/// then reads everything back and checks that every acknowledged record is at its offset.
async fn workload(acked: Arc<AtomicU32>) -> Result<(), Box<dyn std::error::Error>> {
    let env = sim_env(
        DiskFaults::default(),
        SharedRng::seeded(2),
        SharedRng::seeded(2 + 100),
        None,
    );
    let admin = Admin::new(env.clone(), client_config())?;
    let mut topic = NewTopic::new("t");
    topic.partitions = 2;
    admin.create_topic(&topic).await?;
    let producer = Producer::new(
        env.clone(),
        ProducerConfig {
            client: client_config(),
            acks: Acks::All,
            ..ProducerConfig::default()
        },
    )?;
    let mut written = BTreeMap::new();
    for i in 0..RECORDS {
        let record = ProducerRecord::new("t", format!("v{i}")).with_key(format!("k{}", i % 5));
        let m = producer.submit(record).await?.wait().await?;
        written.insert((m.partition, m.offset), format!("v{i}"));
        acked.fetch_add(1, Ordering::SeqCst);
    }
    producer.close().await;
    let mut consumer = Consumer::new(
        env,
        ConsumerConfig {
            client: client_config(),
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        },
    )?;
    consumer.assign((0..2).map(|p| TopicPartition::new("t", p)));
    let mut read = BTreeMap::new();
    while read.len() < written.len() {
        for r in consumer.poll(Duration::from_secs(1)).await? {
            let value =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            read.insert((r.partition, r.offset), value);
        }
    }
    // A retry after a lost answer may have written a record twice; an acknowledged record is
    // never missing or elsewhere.
    for (at, value) in &written {
        assert_eq!(read.get(at), Some(value), "acknowledged record at {at:?}");
    }
    Ok(())
}

/// Runs the workload on `seed`, cutting the network once a quarter of the records are
/// acknowledged, for ten seconds. Returns when the partition began and when the run ended.
fn run(seed: u64) -> (Duration, Duration) {
    let mut sim = turmoil::Builder::new()
        .epoch(epoch())
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(300))
        .build();
    sim.host("broker", || async {
        let env = sim_env(
            DiskFaults::default(),
            SharedRng::seeded(1),
            SharedRng::seeded(1 + 100),
            None,
        );
        let cli = runnel::config::CliOverrides {
            listen: Some("0.0.0.0:9092".into()),
            advertised: Some("broker:9092".into()),
            data_dir: Some("/data".into()),
        };
        let (config, _) = BrokerConfig::load(None, &[], &cli)?;
        runnel::broker::start(env, config).await?.wait().await;
        Ok(())
    });
    let acked = Arc::new(AtomicU32::new(0));
    sim.client("client", workload(acked.clone()));
    let mut cut_at = None;
    while !sim.step().unwrap() {
        let now = sim.elapsed();
        match cut_at {
            None if acked.load(Ordering::SeqCst) >= RECORDS / 4 => {
                sim.partition("client", "broker");
                cut_at = Some(now);
            }
            Some(t) if now >= t + Duration::from_secs(10) => sim.repair("client", "broker"),
            _ => {}
        }
    }
    assert_eq!(acked.load(Ordering::SeqCst), RECORDS);
    (cut_at.expect("the partition was injected"), sim.elapsed())
}

#[test]
fn the_client_crosses_a_network_partition_on_turmoil() {
    let (cut, end) = run(7);
    // The workload was still producing when the network went: it had to wait it out.
    assert!(
        end > cut + Duration::from_secs(10),
        "cut at {cut:?}, ended at {end:?}"
    );
    // And the client is deterministic: the same seed ends at the same simulated instant.
    assert_eq!(run(7), (cut, end));
}
