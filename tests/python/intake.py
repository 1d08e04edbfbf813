"""Floods a broker with idle connections, then checks a well-behaved client still works.

Opens HOSTILE connections that never send a byte (non-blocking connects, so the ones the
broker cannot accept yet wait in the kernel's backlog), holds them for HOLD seconds, long
enough for connections.max.idle.ms to reap what the broker accepted, then, still holding
them, produces and consumes COUNT records with confluent-kafka. Prints how many of the
hostile connections the broker closed, and "ok".

usage: intake.py BOOTSTRAP TOPIC HOSTILE HOLD COUNT
"""
import resource
import select
import socket
import sys
import time

from confluent_kafka import Consumer, Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
hostile, hold, count = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
host, port = bootstrap.rsplit(":", 1)

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = hostile + 1024
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

socks = []
for i in range(hostile):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex((host, int(port)))
    socks.append(s)
    # Paced, so the broker drains the kernel's accept queue between waves instead of the
    # kernel dropping SYNs (retried only seconds later): the flood must pass the broker's
    # open-files limit before its first connections are reaped as idle.
    if i % 100 == 99:
        time.sleep(0.03)

deadline = time.time() + hold
closed = set()
by_fd = {s.fileno(): s for s in socks}
poller = select.poll()
for fd in by_fd:
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
while time.time() < deadline:
    for fd, _ in poller.poll(200):
        s = by_fd[fd]
        try:
            if s.recv(1) == b"":
                closed.add(fd)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            closed.add(fd)
        poller.unregister(fd)
print(f"hostile connections closed by the broker: {len(closed)}", flush=True)

p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
for i in range(count):
    p.produce(topic, value=f"after-flood-{i}".encode())
left = p.flush(60)
assert left == 0, f"{left} records not acknowledged"

c = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": "intake-check",
        "auto.offset.reset": "earliest",
    }
)
c.subscribe([topic])
got = set()
stop = time.time() + 60
while len(got) < count and time.time() < stop:
    m = c.poll(1.0)
    if m is not None and m.error() is None:
        got.add(m.value().decode())
c.close()
assert len(got) == count, f"read {len(got)} of {count}"
for s in socks:
    s.close()
print("ok", flush=True)
