"""Commits or checks a group's offset with confluent-kafka, outside group management
(assign, then commit synchronously): the way tools and manual-offset consumers commit.

usage: offsets.py BOOTSTRAP GROUP TOPIC commit|check OFFSET
"""
import sys
from confluent_kafka import Consumer, TopicPartition

bootstrap, group, topic, mode, offset = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
tp = TopicPartition(topic, 0, offset)
if mode == "commit":
    res = c.commit(offsets=[tp], asynchronous=False)
    assert res[0].error is None, res
else:
    got = c.committed([TopicPartition(topic, 0)], timeout=30)[0]
    assert got.error is None and got.offset == offset, f"committed {got.offset} ({got.error}), want {offset}"
c.close()
print("ok")
