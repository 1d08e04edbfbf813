"""Consumer groups against runnel with two real clients: confluent-kafka (librdkafka 2.16) and
kafka-python 3.0. Exits nonzero on any mismatch.

  1. confluent-kafka produces N keyed records to a 6-partition topic;
  2. a confluent-kafka group consumer reads part of them, commits synchronously and closes;
  3. a kafka-python consumer of the same group resumes exactly at the committed offsets and
     reads the rest: every record once across the two, none skipped;
  4. both clients read the committed offsets back (OffsetFetch), the admin client lists and
     describes the group, and deletes it once it is empty.

usage: groups.py BOOTSTRAP TOPIC RECORDS
"""
import sys
import time
from confluent_kafka import Consumer, Producer, TopicPartition, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition as KTP

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
PARTITIONS = 6
GROUP = "runnel-test-group"

admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(timeout=30)

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
for i in range(n):
    producer.produce(topic, key=f"k{i % 31}", value=f"v{i}")
    producer.poll(0)
assert producer.flush(60) == 0

# 2. confluent-kafka: read about half, commit, close.
c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": GROUP,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 6000,
})
c.subscribe([topic])
first = {}
deadline = time.time() + 90
while len(first) < n // 2 and time.time() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        raise SystemExit(f"confluent consumer error: {m.error()}")
    first[(m.partition(), m.offset())] = m.value().decode()
assert len(first) >= n // 2, f"confluent consumer read only {len(first)}"
assignment = c.assignment()
assert sorted(tp.partition for tp in assignment) == list(range(PARTITIONS)), assignment
# Partitions not read from yet have no position (OFFSET_INVALID) and are not committed.
positions = [tp for tp in c.position(assignment) if tp.offset >= 0]
committed_sync = c.commit(offsets=positions, asynchronous=False)
assert all(tp.error is None for tp in committed_sync), committed_sync
want = {tp.partition: tp.offset for tp in positions}
got = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30) if tp.offset >= 0}
assert got == want, f"confluent committed {got}, positions were {want}"
# Only what was read below the committed positions counts as consumed by the first member.
first = {k: v for k, v in first.items() if k[1] < want.get(k[0], -1)}
c.close()

# 4a. The admin client sees the group, empty now.
groups = admin.list_consumer_groups().result(timeout=30)
listed = {g.group_id: g for g in groups.valid}
assert GROUP in listed, f"{GROUP} not listed: {sorted(listed)}"

# 3. kafka-python resumes where the commit left off.
k = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id=GROUP,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    session_timeout_ms=6000,
    consumer_timeout_ms=15000,
)
rest = {}
for m in k:
    rest[(m.partition, m.offset)] = m.value.decode()
    if len(first) + len(rest) >= n:
        break
for p in range(PARTITIONS):
    assert k.committed(KTP(topic, p)) == want.get(p), (p, k.committed(KTP(topic, p)), want.get(p))
firsts = {}
for (p, o) in rest:
    firsts[p] = min(o, firsts.get(p, o))
for p, o in firsts.items():
    assert o == want.get(p, 0), f"kafka-python started partition {p} at {o}, the commit was {want.get(p)}"
both = set(first) | set(rest)
assert not (set(first) & set(rest)), "records read by both members"
values = sorted(set(first.values()) | set(rest.values()))
assert len(both) == n and len(values) == n, f"{len(both)} offsets, {len(values)} values, want {n}"
k.commit()
k.close()

# 4b. Describe while empty, then delete.
desc = admin.describe_consumer_groups([GROUP])[GROUP].result(timeout=30)
assert str(desc.state).endswith("EMPTY"), desc.state
admin.delete_consumer_groups([GROUP])[GROUP].result(timeout=30)
try:
    admin.delete_consumer_groups([GROUP])[GROUP].result(timeout=30)
    raise SystemExit("deleting a deleted group succeeded")
except KafkaException as e:
    assert "GROUP_ID_NOT_FOUND" in str(e), e
print(f"ok: {len(first)} by confluent-kafka, {len(rest)} by kafka-python, committed {want}")
