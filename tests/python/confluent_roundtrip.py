"""confluent-kafka (librdkafka 2.16) against runnel: admin create/list, keyed produce with
acks=all, assign + seek + consume, end offsets. Exits nonzero on any mismatch.

usage: confluent_roundtrip.py BOOTSTRAP TOPIC RECORDS
"""
import sys
import time
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
PARTITIONS = 3

admin = AdminClient({"bootstrap.servers": bootstrap})
for name, fut in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).items():
    fut.result(timeout=30)
md = admin.list_topics(timeout=30)
assert topic in md.topics, f"{topic} not listed: {sorted(md.topics)}"
assert len(md.topics[topic].partitions) == PARTITIONS
# Creating it again is TOPIC_ALREADY_EXISTS.
try:
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    raise SystemExit("creating an existing topic succeeded")
except Exception as e:
    assert "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e), e

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": len(sys.argv) > 4 and sys.argv[4] == "idempotent"})
acked = {}
errors = []
def on_delivery(err, msg):
    if err:
        errors.append(err)
    else:
        acked[msg.value().decode()] = (msg.partition(), msg.offset(), msg.key().decode())
for i in range(n):
    producer.produce(topic, key=f"key-{i % 17}", value=f"value-{i}", on_delivery=on_delivery)
    producer.poll(0)
assert producer.flush(60) == 0, "records left unflushed"
assert not errors, errors[:5]
assert len(acked) == n
# One key, one partition, as the Java client's murmur2 partitioner puts it.
by_key = {}
for value, (p, o, k) in acked.items():
    by_key.setdefault(k, set()).add(p)
assert all(len(ps) == 1 for ps in by_key.values()), by_key

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
seen = {}
deadline = time.time() + 60
while len(seen) < n and time.time() < deadline:
    m = consumer.poll(1.0)
    if m is None:
        continue
    assert not m.error(), m.error()
    v = m.value().decode()
    assert v not in seen, f"duplicate {v}"
    seen[v] = (m.partition(), m.offset())
    assert acked[v][:2] == seen[v], f"{v} acknowledged at {acked[v]} read at {seen[v]}"
assert len(seen) == n, f"consumed {len(seen)} of {n}"
# Per partition, offsets are dense from 0 and in the order the producer sent.
for p in range(PARTITIONS):
    offsets = sorted(o for (pp, o) in seen.values() if pp == p)
    assert offsets == list(range(len(offsets))), f"partition {p} offsets not dense"
    sent_order = [int(v.split("-")[1]) for v, (pp, o) in sorted(seen.items(), key=lambda kv: kv[1][1]) if pp == p]
    assert sent_order == sorted(sent_order), f"partition {p} out of send order"

# End offsets.
total = 0
for p in range(PARTITIONS):
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
    assert low == 0
    total += high
assert total == n, f"end offsets sum to {total}, not {n}"

# Seek into the middle of partition 0 and read from there.
count0 = sum(1 for (p, o) in seen.values() if p == 0)
mid = count0 // 2
consumer.assign([TopicPartition(topic, 0, mid)])
first = None
deadline = time.time() + 30
while first is None and time.time() < deadline:
    m = consumer.poll(1.0)
    if m is not None and not m.error():
        first = m
assert first is not None and first.offset() == mid, f"seek to {mid} read {first and first.offset()}"
consumer.close()
print(f"ok: {n} records through {PARTITIONS} partitions")
