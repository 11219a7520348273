"""kill -9 the broker while an idempotent acks=all producer runs: after a restart every
acknowledged record is there, in order, and nothing is duplicated."""

import subprocess
import sys
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import CLIENTS, free_port

COUNT = 30_000


def read_all(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "durability-check",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out = defaultdict(list)
    highs = {}
    for p in range(partitions):
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        highs[p] = high
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    deadline = time.time() + 60
    while time.time() < deadline and any(len(out[p]) < highs[p] for p in highs):
        for m in c.consume(1000, 0.5):
            if m.error() is None:
                out[m.partition()].append((m.offset(), int(m.value())))
    c.close()
    return out, highs


# Both storage modes: direct I/O (the default) leaves its last block zero-padded when killed,
# buffered I/O leaves whatever the page cache had written back.
@pytest.mark.parametrize("log_io", ["direct", "buffered"])
def test_kill9_loses_no_acknowledged_record(broker_factory, tmp_path, log_io):
    port = free_port()
    listen = [f"127.0.0.{i + 1}:{port}" for i in range(3)]
    broker = broker_factory(listen=listen, extra_args=["--log-io", log_io])
    topic = "durable"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result(30)

    acked_file = tmp_path / "acked.txt"
    producer = subprocess.Popen([sys.executable, str(CLIENTS / "durable_producer.py"),
                                 broker.bootstrap, topic, str(COUNT), str(acked_file)],
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if acked_file.exists() and sum(1 for _ in open(acked_file)) >= 5000:
            break
        time.sleep(0.05)
    acked_before_kill = sum(1 for _ in open(acked_file))
    assert acked_before_kill >= 5000, "producer made progress before the kill"
    broker.kill9()
    time.sleep(0.5)
    broker.start()

    _, err = producer.communicate(timeout=240)
    assert producer.returncode == 0, err

    acked = [tuple(map(int, line.split())) for line in open(acked_file)]
    assert len(acked) == COUNT, f"every record acknowledged in the end ({len(acked)})"
    log, highs = read_all(broker.bootstrap, topic, 3)

    by_offset = {p: dict(entries) for p, entries in log.items()}
    for partition, offset, value in acked:
        assert by_offset.get(partition, {}).get(offset) == value, \
            f"acknowledged record {value} at {partition}/{offset} is missing"
    values = [v for entries in log.values() for _, v in entries]
    assert len(values) == len(set(values)), "no record written twice"
    assert sorted(values) == list(range(COUNT))
    for p, entries in log.items():
        vals = [v for _, v in sorted(entries)]
        assert vals == sorted(vals), f"partition {p} keeps the producer's order"
