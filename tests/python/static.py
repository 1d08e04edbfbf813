"""Static membership (KIP-345) against runnel with confluent-kafka (librdkafka 2.16): a static
member that closes and comes back within its session timeout takes its old place without a
rebalance. Exits nonzero on any mismatch.

  1. a dynamic member D and a static member S (group.instance.id) share a 4-partition topic;
  2. S closes (a static member sends no LeaveGroup) and a new S with the same instance id
     joins within the session timeout;
  3. D sees no new assignment (no rebalance happened), and the new S owns S's old partitions.

usage: static.py BOOTSTRAP TOPIC
"""
import sys
import time
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic = sys.argv[1], sys.argv[2]
GROUP = "runnel-static-group"
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(timeout=30)

assignments = {"D": 0, "S": 0}


def member(name, static):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "session.timeout.ms": 30000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": "range",
    }
    if static:
        conf["group.instance.id"] = "static-s"
    c = Consumer(conf)

    def on_assign(consumer, partitions):
        assignments[name] += 1

    c.subscribe([topic], on_assign=on_assign)
    return c


def poll_until(consumers, done, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        for c in consumers:
            m = c.poll(0.1)
            if m is not None and m.error():
                raise SystemExit(f"consumer error: {m.error()}")
        if done():
            return True
    return False


d = member("D", False)
s = member("S", True)
both = lambda: len(d.assignment()) + len(s.assignment()) == 4 and d.assignment() and s.assignment()
assert poll_until([d, s], both, 60), f"no stable split: D {d.assignment()} S {s.assignment()}"
# Let any trailing rebalance settle.
poll_until([d, s], lambda: False, 3)
assert both(), f"split changed: D {d.assignment()} S {s.assignment()}"
before_d = assignments["D"]
s_parts = sorted(tp.partition for tp in s.assignment())
d_parts = sorted(tp.partition for tp in d.assignment())
s.close()

s2 = member("S", True)
ok = poll_until([d, s2], lambda: len(s2.assignment()) > 0, 20)
assert ok, f"the static member did not get its partitions back: {s2.assignment()}"
poll_until([d, s2], lambda: False, 3)
assert assignments["D"] == before_d, f"D was reassigned {assignments['D'] - before_d} times: a rebalance happened"
assert sorted(tp.partition for tp in s2.assignment()) == s_parts, (s2.assignment(), s_parts)
assert sorted(tp.partition for tp in d.assignment()) == d_parts, (d.assignment(), d_parts)
d.close()
s2.close()
print(f"ok: static member rejoined with {s_parts} and no rebalance (D kept {d_parts})")
