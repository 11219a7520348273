"""The RocketMQ workload with PyPI `rocketmq` 0.4.4, whose wheel bundles Apache's C++ client
(librocketmq): one scenario per run, one JSON object on stdout.

  produce-consume NS TOPIC N   N messages (a quarter each sync, async, oneway, and in batches
                               of 10; tags alternating TagA/TagB), a push group of two members
                               and a group on TagA only
  orderly NS TOPIC STEPS       10 orders sent by order id (send_orderly), read back in order
  broadcast NS TOPIC N         two BROADCASTING members each get every message
  delay NS TOPIC               delay level 2 (5 s)
  retry NS TOPIC               a callback that fails once, then succeeds
  pull NS TOPIC N              a pull consumer reads every message of every queue
  acl NS TOPIC AK SK           signed sends and consumption; then the same with a wrong secret
"""

import json
import sys
import threading
import time

from rocketmq.client import Message, MessageModel, Producer, PullConsumer, PushConsumer, RecvMessage, dll
from rocketmq.ffi import _CConsumeStatus


class ConsumeStatus:
    """0.4.4's callbacks succeed by returning and fail by raising; a raise escapes the ctypes
    callback though, so the retry scenario registers a raw callback that returns the status
    code (RECONSUME_LATER) the C++ client acts on."""
    CONSUME_SUCCESS = None


def producer(ns, group, ak=None, sk=None):
    p = Producer(group, timeout=10000)
    p.set_namesrv_addr(ns)
    if ak:
        p.set_session_credentials(ak, sk, "LOCAL")
    p.start()
    return p


def message(topic, i, tag=None, key=None, body=None):
    m = Message(topic)
    m.set_keys(key or f"k{i}")
    m.set_tags(tag or ("TagA" if i % 2 == 0 else "TagB"))
    m.set_body(body or f"m{i}")
    return m


def push(ns, group, instance, topic, expression, callback, model=MessageModel.CLUSTERING, ak=None, sk=None):
    c = PushConsumer(group, message_model=model)
    c.set_namesrv_addr(ns)
    c.set_instance_name(instance)
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
    seen, per_member, tag_a, wrong_tag = {}, {}, set(), [0]

    def member(name):
        def cb(msg):
            with lock:
                key = msg.keys.decode()
                seen[key] = seen.get(key, 0) + 1
                per_member[name] = per_member.get(name, 0) + 1
            return ConsumeStatus.CONSUME_SUCCESS
        return cb

    def filtered(msg):
        with lock:
            if msg.tags.decode() != "TagA":
                wrong_tag[0] += 1
            tag_a.add(msg.keys.decode())
        return ConsumeStatus.CONSUME_SUCCESS

    # The topic exists before the consumers start (created by the first sync send).
    p = producer(ns, f"pg-{topic}")
    p.send_sync(message(topic, -1, key="warmup"))
    consumers = [push(ns, f"cg-{topic}", f"c{i}", topic, "TagA || TagB", member(f"c{i}")) for i in (1, 2)]
    consumers.append(push(ns, f"cg-taga-{topic}", "f1", topic, "TagA", filtered))
    time.sleep(3)
    sent, quarter, i = 0, n // 4, 0
    for _ in range(quarter):
        sent += p.send_sync(message(topic, i)).status == 0
        i += 1
    done = threading.Semaphore(0)
    async_ok = [0]

    def ok(result):
        async_ok[0] += 1
        done.release()

    def failed(e):
        done.release()

    for _ in range(quarter):
        p.send_async(message(topic, i), ok, failed)
        i += 1
    for _ in range(quarter):
        done.acquire(timeout=60)
    sent += async_ok[0]
    for _ in range(quarter):
        p.send_oneway(message(topic, i))
        sent += 1
        i += 1
    while i < n:
        batch = [message(topic, j) for j in range(i, min(i + 10, n))]
        if p.send_batch(batch).status == 0:
            sent += len(batch)
        i += len(batch)
    p.shutdown()
    want = {f"k{j}" for j in range(n)}
    wait(lambda: want <= set(seen) and len(tag_a) >= n // 2, 120)
    time.sleep(1)
    for c in consumers:
        c.shutdown()
    seen.pop("warmup", None)
    tag_a.discard("warmup")
    return {"sent": sent, "distinct": len(seen), "total": sum(seen.values()),
            "duplicates": sum(1 for v in seen.values() if v > 1), "members": len(per_member),
            "tagA": len(tag_a), "wrongTag": wrong_tag[0]}


def orderly(ns, topic, steps):
    p = producer(ns, f"pg-{topic}")
    for s in range(steps):
        for o in range(10):
            p.send_orderly(message(topic, s, tag="order", key=f"o{o}-{s}", body=f"{o}:{s}"), o)
    p.shutdown()
    last, out_of_order, received = {}, [0], [0]
    lock = threading.Lock()

    def cb(msg):
        o, s = map(int, msg.body.decode().split(":"))
        with lock:
            prev = last.get(o)
            if (prev is None and s != 0) or (prev is not None and prev + 1 != s):
                out_of_order[0] += 1
            last[o] = s
            received[0] += 1
        return ConsumeStatus.CONSUME_SUCCESS

    c = PushConsumer(f"og-{topic}", orderly=True)
    c.set_namesrv_addr(ns)
    c.subscribe(topic, cb)
    c.start()
    wait(lambda: received[0] >= 10 * steps, 60)
    c.shutdown()
    return {"received": received[0], "outOfOrder": out_of_order[0]}


def broadcast(ns, topic, n):
    p = producer(ns, f"pg-{topic}")
    p.send_sync(message(topic, -1, key="warmup"))
    got = {"b1": set(), "b2": set()}

    def member(name):
        def cb(msg):
            got[name].add(msg.keys.decode())
            return ConsumeStatus.CONSUME_SUCCESS
        return cb

    consumers = [push(ns, f"bg-{topic}", name, topic, "*", member(name), MessageModel.BROADCASTING) for name in got]
    time.sleep(3)
    for i in range(n):
        p.send_sync(message(topic, i))
    p.shutdown()
    want = {f"k{i}" for i in range(n)}
    wait(lambda: all(want <= s for s in got.values()), 60)
    for c in consumers:
        c.shutdown()
    return {name: len(s & want) for name, s in got.items()}


def delay(ns, topic):
    arrived = []

    def cb(msg):
        if msg.keys.decode() == "delayed" and not arrived:
            arrived.append(time.time())
        return ConsumeStatus.CONSUME_SUCCESS

    p = producer(ns, f"pg-{topic}")
    p.send_sync(message(topic, -1, key="warmup"))
    c = push(ns, f"dg-{topic}", "d1", topic, "*", cb)
    time.sleep(3)
    m = message(topic, 0, key="delayed")
    m.set_delay_time_level(2)
    sent_at = time.time()
    status = p.send_sync(m).status
    wait(lambda: arrived, 60)
    p.shutdown()
    c.shutdown()
    return {"status": int(status), "delayMs": int((arrived[0] - sent_at) * 1000) if arrived else -1}


def retry(ns, topic):
    attempts = []

    def raw(_consumer, cmsg):
        msg = RecvMessage(cmsg)
        if msg.keys.decode() != "flaky":
            return _CConsumeStatus.CONSUME_SUCCESS.value
        attempts.append(msg.reconsume_times)
        return (_CConsumeStatus.RECONSUME_LATER if len(attempts) == 1 else _CConsumeStatus.CONSUME_SUCCESS).value

    p = producer(ns, f"pg-{topic}")
    p.send_sync(message(topic, -1, key="warmup"))
    c = PushConsumer(f"rg-{topic}")
    c.set_namesrv_addr(ns)
    c.set_instance_name("r1")
    dll.Subscribe(c._handle, topic.encode(), b"*")
    c._register_callback(raw)
    c.start()
    time.sleep(3)
    p.send_sync(message(topic, 0, key="flaky"))
    # The first retry comes back after delay level 3 (10 s).
    wait(lambda: len(attempts) >= 2, 90)
    p.shutdown()
    c.shutdown()
    return {"attempts": attempts}


def pull(ns, topic, n):
    p = producer(ns, f"pg-{topic}")
    for i in range(n):
        p.send_sync(message(topic, i))
    p.shutdown()
    c = PullConsumer(f"pull-{topic}")
    c.set_namesrv_addr(ns)
    c.start()
    keys = set()
    deadline = time.monotonic() + 60
    while len(keys) < n and time.monotonic() < deadline:
        for msg in c.pull(topic):
            keys.add(msg.keys.decode())
    c.shutdown()
    return {"pulled": len(keys)}


def acl(ns, topic, ak, sk):
    p = producer(ns, f"pg-{topic}", ak, sk)
    status = int(p.send_sync(message(topic, 0, key="acl-cpp")).status)
    p.shutdown()
    got = set()

    def cb(msg):
        got.add(msg.keys.decode())
        return ConsumeStatus.CONSUME_SUCCESS

    c = push(ns, f"acl-cpp-{topic}", "a1", topic, "*", cb, ak=ak, sk=sk)
    wait(lambda: "acl-cpp" in got, 60)
    c.shutdown()
    bad = producer(ns, f"pg-bad-{topic}", ak, sk + "-wrong")
    try:
        bad.send_sync(message(topic, 1, key="refused"))
        refused = ""
    except Exception as e:  # the client raises with the broker's remark in the text
        refused = str(e)
    bad.shutdown()
    return {"status": status, "consumed": "acl-cpp" in got, "wrongSecret": refused}


def main():
    scenario, ns, *args = sys.argv[1:]
    fn = {"produce-consume": lambda: produce_consume(ns, args[0], int(args[1])),
          "orderly": lambda: orderly(ns, args[0], int(args[1])),
          "broadcast": lambda: broadcast(ns, args[0], int(args[1])),
          "delay": lambda: delay(ns, args[0]),
          "retry": lambda: retry(ns, args[0]),
          "pull": lambda: pull(ns, args[0], int(args[1])),
          "acl": lambda: acl(ns, *args)}[scenario]
    print(json.dumps(fn()), flush=True)


if __name__ == "__main__":
    main()
