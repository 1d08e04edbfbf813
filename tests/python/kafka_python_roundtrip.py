"""kafka-python 3.0 against runnel: admin create/list, keyed produce with acks=all, assign +
seek + consume, end offsets. Exits nonzero on any mismatch.

usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC RECORDS [idempotent|plain]
"""
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
idempotent = len(sys.argv) > 4 and sys.argv[4] == "idempotent"
PARTITIONS = 3

admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
assert topic in admin.list_topics()
try:
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    raise SystemExit("creating an existing topic succeeded")
except TopicAlreadyExistsError:
    pass

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent, linger_ms=5)
futures = [(i, producer.send(topic, key=f"key-{i % 17}".encode(), value=f"value-{i}".encode())) for i in range(n)]
producer.flush()
acked = {}
for i, f in futures:
    md = f.get(timeout=60)
    acked[f"value-{i}"] = (md.partition, md.offset)
by_key = {}
for i, f in futures:
    by_key.setdefault(i % 17, set()).add(acked[f"value-{i}"][0])
assert all(len(ps) == 1 for ps in by_key.values()), by_key

tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
consumer.assign(tps)
consumer.seek_to_beginning()
seen = {}
for m in consumer:
    v = m.value.decode()
    assert v not in seen, f"duplicate {v}"
    seen[v] = (m.partition, m.offset)
    assert acked[v] == seen[v], f"{v} acknowledged at {acked[v]} read at {seen[v]}"
    if len(seen) == n:
        break
assert len(seen) == n, f"consumed {len(seen)} of {n}"
ends = consumer.end_offsets(tps)
assert sum(ends.values()) == n, ends
assert all(v == 0 for v in consumer.beginning_offsets(tps).values())
# Seek to the middle of partition 1.
mid = ends[tps[1]] // 2
consumer.seek(tps[1], mid)
consumer.pause(tps[0], tps[2])
m = next(consumer)
assert (m.partition, m.offset) == (1, mid), (m.partition, m.offset)
consumer.close()
print(f"ok: {n} records through {PARTITIONS} partitions")
