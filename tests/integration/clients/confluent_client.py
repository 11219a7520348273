"""confluent-kafka (librdkafka) side of the scenario; see common.py for the interface.

Runs under the virtualenv (confluent-kafka 2.x) and under Debian's /usr/bin/python3
(python3-confluent-kafka 1.7.0 on librdkafka 2.0.2), so it sticks to the API both have.
"""

import sys

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import PARTITIONS, Group, emit, headers_dict, parse_args, record_fields, run_member_threads, text


def produce(a):
    if a.create:
        admin = AdminClient({"bootstrap.servers": a.bootstrap})
        for future in admin.create_topics([NewTopic(a.topic, num_partitions=PARTITIONS, replication_factor=1)],
                                          operation_timeout=30).values():
            future.result(60)
    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5})
    acked, errors = [0], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[0] += 1

    for i in range(a.start, a.start + a.count):
        key, value, headers = record_fields(a.tag, i)
        while True:
            try:
                p.produce(a.topic, key=key, value=value, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    unflushed = p.flush(60)
    return {"acked": acked[0], "errors": errors[:5], "unflushed": unflushed}


def member(a, idx, group):
    consumer = Consumer({
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
    })
    next_offset = {}  # partition -> one past the last record this member counted

    def commit(partitions=None):
        offsets = [TopicPartition(a.topic, p, o) for p, o in next_offset.items()
                   if partitions is None or p in partitions]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as e:
                group.commit_failed(idx, e)

    def on_assign(c, partitions):
        c.assign(partitions)
        if group.set_assignment(idx, {tp.partition for tp in partitions}):
            c.resume(partitions)
        else:
            c.pause(partitions)

    def on_revoke(c, partitions):
        commit({tp.partition for tp in partitions})
        group.set_assignment(idx, ())

    consumer.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
    resumed = False
    while not group.done():
        if not resumed and group.is_released():
            consumer.resume(consumer.assignment())
            resumed = True
        batch = []
        for m in consumer.consume(500, 0.2):
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    print(f"member {idx}: {err}", file=sys.stderr)
                continue
            if not group.is_released():
                # fetched before the pause took hold: read it again once released
                consumer.seek(TopicPartition(m.topic(), m.partition(), m.offset()))
                continue
            batch.append([m.partition(), m.offset(), text(m.key()), text(m.value()), headers_dict(m.headers())])
        if batch:
            for r in batch:
                next_offset[r[0]] = r[1] + 1
            group.add(idx, batch)
            commit()
    commit()
    group.finish()
    consumer.close()


def consume(a):
    return run_member_threads(member, a, Group(a.members, a.count, a.timeout))


def main():
    a = parse_args()
    emit(produce(a) if a.phase == "produce" else consume(a))


if __name__ == "__main__":
    main()
