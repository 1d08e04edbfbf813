//! Batching, readiness, draining and retry order, with time passed in.

use super::*;
use crate::client::metadata::{BrokerInfo, PartitionMetadata, TopicMetadata};

fn limits(batch_bytes: usize) -> Limits {
    Limits {
        batch_bytes,
        linger: Duration::from_millis(5),
        delivery_timeout: Duration::from_secs(120),
        one_in_flight: false,
    }
}

/// Topic "t" with `n` partitions; partition p led by broker `p % 2`.
fn metadata(n: i32) -> ClusterMetadata {
    let mut md = ClusterMetadata::default();
    for id in 0..2 {
        md.brokers.insert(
            id,
            BrokerInfo {
                id,
                host: "h".into(),
                port: 1,
                rack: None,
            },
        );
    }
    let partitions = (0..n)
        .map(|p| PartitionMetadata {
            partition: p,
            leader: Some(p % 2),
            leader_epoch: 0,
            replicas: vec![p % 2],
            isr: vec![p % 2],
            offline: vec![],
            error: None,
        })
        .collect();
    md.topics.insert(
        "t".into(),
        TopicMetadata {
            name: "t".into(),
            topic_id: uuid::Uuid::nil(),
            internal: false,
            partitions,
        },
    );
    md
}

fn record(value_len: usize) -> NewRecord {
    NewRecord {
        timestamp: 1,
        key: None,
        value: Some(vec![b'x'; value_len]),
        headers: vec![],
    }
}

fn add(acc: &mut Accumulator, partition: i32, value_len: usize, now: Instant) -> (i32, bool) {
    let r = record(value_len);
    let size = record_size_max(&r);
    let (_, index, wake) = acc.append("t", partition, r, size, || now).unwrap();
    (index, wake)
}

#[test]
fn records_fill_a_batch_up_to_batch_size() {
    let now = Instant::now();
    let mut acc = Accumulator::new(limits(1000));
    // Each record is bounded by 100 + 40 bytes; the batch header is 61.
    let adds: Vec<(i32, bool)> = (0..8).map(|_| add(&mut acc, 0, 100, now)).collect();
    assert_eq!(adds[0], (0, true), "a new batch wakes the sender");
    assert_eq!(adds[1], (1, false));
    assert_eq!(adds[5], (5, false));
    assert_eq!(
        adds[6],
        (0, true),
        "the seventh does not fit: a second batch"
    );
    let md = metadata(1);
    let batches = acc.drain(0, &md, usize::MAX, now);
    assert_eq!(batches.len(), 1, "one batch per partition per request");
    assert_eq!(batches[0].record_count, 6);
    assert!(batches[0].size_bytes <= 1000);
}

#[test]
fn a_batch_waits_for_linger_unless_full_flushing_or_closing() {
    let t0 = Instant::now();
    let md = metadata(2);
    let mut acc = Accumulator::new(limits(1000));
    add(&mut acc, 1, 10, t0);
    let r = acc.ready(t0, &md);
    assert!(r.brokers.is_empty());
    assert_eq!(r.next_check, Some(t0 + Duration::from_millis(5)));
    assert_eq!(
        acc.ready(t0 + Duration::from_millis(5), &md).brokers,
        vec![1]
    );
    let waits = acc.begin_flush();
    assert_eq!(waits.len(), 1);
    assert_eq!(acc.ready(t0, &md).brokers, vec![1]);
    acc.end_flush();
    assert!(acc.ready(t0, &md).brokers.is_empty());
    for _ in 0..20 {
        add(&mut acc, 0, 100, t0);
    }
    assert_eq!(
        acc.ready(t0, &md).brokers,
        vec![0],
        "partition 0's first batch is full"
    );
    acc.close();
    assert_eq!(acc.ready(t0, &md).brokers, vec![0, 1]);
    assert!(acc.append("t", 0, record(1), 41, || t0).is_err());
}

#[test]
fn unknown_leaders_are_reported_not_guessed() {
    let t0 = Instant::now();
    let mut md = metadata(2);
    md.topics.get_mut("t").unwrap().partitions[1].leader = None;
    let mut acc = Accumulator::new(limits(1000));
    add(&mut acc, 1, 10, t0);
    let r = acc.ready(t0 + Duration::from_secs(1), &md);
    assert!(r.unknown_leaders && r.brokers.is_empty());
    assert!(acc.drain(0, &md, usize::MAX, t0).is_empty());
    assert!(acc.drain(1, &md, usize::MAX, t0).is_empty());
}

#[test]
fn drain_takes_one_batch_per_partition_of_that_broker_within_the_size() {
    let t0 = Instant::now();
    let md = metadata(4);
    let mut acc = Accumulator::new(limits(1000));
    for p in 0..4 {
        add(&mut acc, p, 100, t0);
    }
    let to_1 = acc.drain(1, &md, usize::MAX, t0);
    let mut ps: Vec<i32> = to_1.iter().map(|b| b.tp.partition).collect();
    ps.sort();
    assert_eq!(ps, vec![1, 3]);
    // A budget of one batch: the first always goes, the second waits for the next request.
    let to_0 = acc.drain(0, &md, 10, t0);
    assert_eq!(to_0.len(), 1);
    assert_eq!(acc.drain(0, &md, 10, t0).len(), 1);
    assert!(acc.drain(0, &md, 10, t0).is_empty());
}

#[test]
fn retried_batches_go_back_in_creation_order_after_their_backoff() {
    let t0 = Instant::now();
    let md = metadata(1);
    let mut acc = Accumulator::new(limits(200));
    for _ in 0..3 {
        add(&mut acc, 0, 100, t0);
    }
    let first = acc.drain(0, &md, usize::MAX, t0).pop().unwrap();
    let second = acc.drain(0, &md, usize::MAX, t0).pop().unwrap();
    assert!(first.id < second.id);
    // Both fail; the later one is put back first.
    let back = t0 + Duration::from_millis(100);
    acc.reenqueue(second, back);
    acc.reenqueue(first, back);
    assert!(acc.drain(0, &md, usize::MAX, t0).is_empty(), "backing off");
    let r = acc.ready(t0, &md);
    assert_eq!(r.next_check, Some(back));
    let again: Vec<u64> = (0..3)
        .flat_map(|_| acc.drain(0, &md, usize::MAX, back))
        .map(|b| b.id)
        .collect();
    assert_eq!(again, vec![0, 1, 2]);
}

#[test]
fn one_in_flight_mutes_the_partition_until_its_batch_settles() {
    let t0 = Instant::now();
    let md = metadata(1);
    let mut acc = Accumulator::new(Limits {
        one_in_flight: true,
        ..limits(100)
    });
    for _ in 0..3 {
        add(&mut acc, 0, 60, t0);
    }
    let b = acc.drain(0, &md, usize::MAX, t0).pop().unwrap();
    assert!(acc.drain(0, &md, usize::MAX, t0).is_empty());
    assert!(acc.ready(t0, &md).brokers.is_empty());
    let mem = acc.finish(
        b,
        Ok(BatchAck {
            base_offset: 0,
            log_append_time_ms: -1,
        }),
    );
    assert!(mem > 0);
    assert_eq!(acc.drain(0, &md, usize::MAX, t0).len(), 1);
}

#[test]
fn queued_batches_expire_after_the_delivery_timeout() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(limits(100));
    add(&mut acc, 0, 60, t0);
    add(&mut acc, 0, 60, t0 + Duration::from_secs(60));
    assert!(acc.expire(t0 + Duration::from_secs(119)).is_empty());
    let gone = acc.expire(t0 + Duration::from_secs(120));
    assert_eq!(gone.len(), 1);
    assert_eq!(acc.expire(t0 + Duration::from_secs(200)).len(), 1);
}

#[test]
fn an_identity_gives_batches_sequence_numbers_that_retries_keep() {
    let t0 = Instant::now();
    let md = metadata(1);
    let mut acc = Accumulator::new(limits(150));
    acc.set_identity(Some(ProducerIdentity {
        producer_id: 7,
        producer_epoch: 1,
    }));
    for _ in 0..5 {
        add(&mut acc, 0, 10, t0);
    }
    let mut a = acc.drain(0, &md, usize::MAX, t0).pop().unwrap();
    a.seal();
    let b = acc.drain(0, &md, usize::MAX, t0).pop().unwrap();
    assert_eq!(a.producer.producer_id, 7);
    assert_eq!(a.producer.base_sequence, 0);
    assert_eq!(b.producer.base_sequence, a.record_count);
    let header = crate::record::batch::check_integrity(a.encoded.as_ref().unwrap()).unwrap();
    assert_eq!(
        (
            header.producer_id,
            header.producer_epoch,
            header.base_sequence
        ),
        (7, 1, 0)
    );
    // A retry resends the same bytes with the same sequence.
    let bytes = a.encoded.clone();
    acc.reenqueue(a, t0);
    let again = acc.drain(0, &md, usize::MAX, t0).pop().unwrap();
    assert_eq!(again.encoded, bytes);
    assert_eq!(again.producer.base_sequence, 0);
}

#[test]
fn without_an_identity_batches_carry_no_producer_fields() {
    let t0 = Instant::now();
    let mut acc = Accumulator::new(limits(150));
    add(&mut acc, 0, 10, t0);
    let mut b = acc.drain(0, &metadata(1), usize::MAX, t0).pop().unwrap();
    b.seal();
    let h = crate::record::batch::validate_batch(b.encoded.as_ref().unwrap()).unwrap();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert!(b.records.is_empty(), "sealing frees the records");
}
