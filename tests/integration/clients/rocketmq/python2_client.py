"""The RocketMQ workload with PyPI `rocketmq-client-python` 2.0.0 and the librocketmq.so of
Apache's C++ client 2.1.0 (from the `rocketmq-python-cvs` 2.1.0.3 sdist), which
scripts/setup-test-env puts together in target/rocketmq-python2 (run with that directory on
PYTHONPATH: its package is also named `rocketmq`, like PyPI `rocketmq` 0.4.4 in the venv).
One scenario per run, one JSON object on stdout.

  produce-consume NS TOPIC N   N sends with keys and tags (alternating TagA/TagB; every tenth
                               one-way, the others sync) to a push group of two members on
                               TagA || TagB and a group on TagA
  orderly NS TOPIC STEPS       10 orders sent by sharding key, an orderly push consumer reads
                               each order's steps in order
  transaction NS TOPIC         a committed, a rolled-back and an undecided (checked back, then
                               committed) transactional message; what a consumer gets
  delay NS TOPIC               delay level 2 (5 s)
  acl NS TOPIC AK SK           a signed send and its consumption; then a wrong secret
"""

import json
import sys
import threading
import time

import ctypes

from rocketmq.client import (ConsumeStatus, Message, Producer, PushConsumer, TransactionMQProducer,
                             TransactionStatus, dll)

# C++ client 2.1.0 dereferences its trace producer when a push consumer shuts down even when
# message trace is off (DefaultMQPushConsumerImpl::shutdownMessageTraceInnerProducer; a
# segfault against any broker), so consumers here run with trace on (CTraceModel OPEN = 0),
# which the Python wrapper 2.0.0 does not expose.
dll.SetPushConsumerMessageTrace.argtypes = [ctypes.c_void_p, ctypes.c_int]
TRACE_OPEN = 0


def producer(ns, group, orderly=False, ak=None, sk=None):
    p = Producer(group, orderly=orderly, timeout=10000)
    p.set_name_server_address(ns)
    if ak:
        p.set_session_credentials(ak, sk, "LOCAL")
    p.start()
    return p


def message(topic, key, tag, body, delay=None):
    m = Message(topic)
    m.set_keys(key)
    m.set_tags(tag)
    m.set_body(body)
    if delay:
        m.set_delay_time_level(delay)
    return m


def consumer(ns, group, topic, callback, expression="*", orderly=False, ak=None, sk=None, instance=None):
    c = PushConsumer(group, orderly=orderly)
    c.set_name_server_address(ns)
    # The C++ client allows one consumer per group and instance name in a process.
    c.set_instance_name(instance or f"{group}-{time.monotonic_ns()}")
    dll.SetPushConsumerMessageTrace(c._handle, TRACE_OPEN)
    if ak:
        c.set_session_credentials(ak, sk, "LOCAL")
    c.subscribe(topic, callback, expression)
    c.start()
    return c


def wait(cond, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not cond():
        time.sleep(0.1)
    return cond()


def produce_consume(ns, topic, n):
    lock = threading.Lock()
    seen, members, tag_a, wrong_tag = {}, {}, set(), [0]

    def member(name):
        def cb(msg):
            with lock:
                key = msg.keys.decode()
                seen[key] = seen.get(key, 0) + 1
                members[name] = members.get(name, 0) + 1
            return ConsumeStatus.CONSUME_SUCCESS
        return cb

    def filtered(msg):
        with lock:
            if msg.tags.decode() != "TagA":
                wrong_tag[0] += 1
            tag_a.add(msg.keys.decode())
        return ConsumeStatus.CONSUME_SUCCESS

    # The topic exists before the consumers start (created by the first send); they have
    # rebalanced before the messages come, so each is delivered once.
    p = producer(ns, f"pg-{topic}")
    assert p.send_sync(message(topic, "warmup", "TagC", "warmup")).status == 0
    consumers = [consumer(ns, f"cg-{topic}", topic, member(name), "TagA || TagB", instance=name)
                 for name in ("c1", "c2")]
    consumers.append(consumer(ns, f"cg-a-{topic}", topic, filtered, "TagA"))
    time.sleep(3)
    sent = 0
    for i in range(n):
        m = message(topic, f"k{i}", "TagA" if i % 2 == 0 else "TagB", f"m{i}")
        if i % 10 == 9:
            p.send_oneway(m)
        else:
            assert p.send_sync(m).status == 0
        sent += 1
    p.shutdown()
    wait(lambda: len(seen) >= n and len(tag_a) >= n // 2, 120)
    time.sleep(2)
    for c in consumers:
        c.shutdown()
    return {"sent": sent, "distinct": len(seen), "total": sum(seen.values()),
            "duplicates": sum(1 for v in seen.values() if v > 1), "members": len(members),
            "tagA": len(tag_a), "wrongTag": wrong_tag[0]}


def orderly(ns, topic, steps):
    p = producer(ns, f"pg-{topic}", orderly=True)
    for step in range(steps):
        for order in range(10):
            r = p.send_orderly_with_sharding_key(message(topic, f"o{order}", "step", f"{order}:{step}"),
                                                 f"order-{order}")
            assert r.status == 0
    p.shutdown()
    lock = threading.Lock()
    last, received, out_of_order = {}, [0], [0]

    def cb(msg):
        order, step = map(int, msg.body.decode().split(":"))
        with lock:
            if step != last.get(order, -1) + 1:
                out_of_order[0] += 1
            last[order] = step
            received[0] += 1
        return ConsumeStatus.CONSUME_SUCCESS

    c = consumer(ns, f"cg-{topic}", topic, cb, orderly=True)
    wait(lambda: received[0] >= steps * 10, 90)
    c.shutdown()
    return {"received": received[0], "outOfOrder": out_of_order[0]}


def transaction(ns, topic):
    checked = []

    def check(msg):
        checked.append(msg.keys.decode())
        return TransactionStatus.COMMIT

    p = TransactionMQProducer(f"tpg-{topic}", check)
    p.set_name_server_address(ns)
    p.start()
    decisions = {"commit-me": TransactionStatus.COMMIT, "rollback-me": TransactionStatus.ROLLBACK,
                 "ask-me": TransactionStatus.UNKNOWN}
    for key, decision in decisions.items():
        r = p.send_message_in_transaction(message(topic, key, "tx", key), lambda m, a, d=decision: d)
        assert r.status == 0
    got = set()

    def cb(msg):
        got.add(msg.keys.decode())
        return ConsumeStatus.CONSUME_SUCCESS

    c = consumer(ns, f"cg-{topic}", topic, cb)
    # The undecided one is committed when the broker checks it back.
    wait(lambda: "ask-me" in got and "commit-me" in got, 60)
    time.sleep(2)
    c.shutdown()
    p.shutdown()
    return {"consumed": sorted(got), "checkedBack": "ask-me" in checked}


def delay(ns, topic):
    p = producer(ns, f"pg-{topic}")
    arrived = []
    c = consumer(ns, f"cg-{topic}", topic, lambda m: arrived.append(time.monotonic()) or ConsumeStatus.CONSUME_SUCCESS)
    time.sleep(2)
    start = time.monotonic()
    r = p.send_sync(message(topic, "late", "d", "later", delay=2))
    wait(lambda: arrived, 60)
    c.shutdown()
    p.shutdown()
    return {"status": int(r.status), "delayMs": int((arrived[0] - start) * 1000) if arrived else -1}


def acl(ns, topic, ak, sk):
    p = producer(ns, f"acl-pg-{topic}", ak=ak, sk=sk)
    status = int(p.send_sync(message(topic, "acl-key", "a", "allowed")).status)
    p.shutdown()
    got = set()
    c = consumer(ns, f"acl-cg-{topic}", topic, lambda m: got.add(m.keys.decode()) or ConsumeStatus.CONSUME_SUCCESS,
                 ak=ak, sk=sk)
    wait(lambda: "acl-key" in got, 60)
    c.shutdown()
    bad = producer(ns, f"acl-bad-{topic}", ak=ak, sk=sk + "-wrong")
    try:
        bad.send_sync(message(topic, "k", "a", "wrong secret"))
        refused = False
    except Exception:  # the C++ client reports a refused send as its own failure
        refused = True
    bad.shutdown()
    return {"status": status, "consumed": "acl-key" in got, "wrongSecret": refused}


def main():
    scenario, ns, *rest = sys.argv[1:]
    out = {
        "produce-consume": lambda: produce_consume(ns, rest[0], int(rest[1])),
        "orderly": lambda: orderly(ns, rest[0], int(rest[1])),
        "transaction": lambda: transaction(ns, rest[0]),
        "delay": lambda: delay(ns, rest[0]),
        "acl": lambda: acl(ns, *rest[:3]),
    }[scenario]()
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    # The C++ client's threads can outlive shutdown; leave without waiting for them.
    import os
    os._exit(0)


if __name__ == "__main__":
    main()
