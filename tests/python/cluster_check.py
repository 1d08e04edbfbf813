"""confluent-kafka (librdkafka 2.16) against a three-node runnel cluster: it sees the three
brokers, creates a topic with replication factor 3 whose leaders are spread evenly, produces
with acks=all through the partitions' leaders and reads every record back.

usage: cluster_check.py BOOTSTRAP TOPIC RECORDS
"""
import sys
from collections import Counter
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
PARTITIONS = 6

admin = AdminClient({"bootstrap.servers": bootstrap})
md = admin.list_topics(timeout=30)
assert sorted(md.brokers) == [1, 2, 3], f"brokers: {sorted(md.brokers)}"
for name, fut in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)]).items():
    fut.result(timeout=30)
md = admin.list_topics(topic=topic, timeout=30)
parts = md.topics[topic].partitions
assert len(parts) == PARTITIONS, parts
for p in parts.values():
    assert sorted(p.replicas) == [1, 2, 3], (p.id, p.replicas)
    assert sorted(p.isrs) == [1, 2, 3], (p.id, p.isrs)
leaders = Counter(p.leader for p in parts.values())
assert leaders == Counter({1: 2, 2: 2, 3: 2}), f"leaders not spread: {leaders}"
# Preferred leaders too: each broker is first in two replica lists.
firsts = Counter(p.replicas[0] for p in parts.values())
assert firsts == Counter({1: 2, 2: 2, 3: 2}), f"preferred leaders not spread: {firsts}"

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
acked, errors = {}, []
def on_delivery(err, msg):
    if err is not None:
        errors.append(str(err))
    else:
        acked[msg.value().decode()] = (msg.partition(), msg.offset())
for i in range(n):
    producer.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
    producer.poll(0)
assert producer.flush(60) == 0, "records still in flight"
assert not errors, errors[:5]
assert len(acked) == n, len(acked)

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-check", "enable.auto.commit": False})
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
seen = {}
while len(seen) < n:
    msg = consumer.poll(10)
    assert msg is not None, f"read {len(seen)} of {n}"
    assert msg.error() is None, msg.error()
    seen[msg.value().decode()] = (msg.partition(), msg.offset())
consumer.close()
assert seen == acked, "records read differ from records acknowledged"
print(f"ok: 3 brokers, leaders {dict(leaders)}, {n} records produced and read")
