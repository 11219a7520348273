"""Scenarios the conformance suite runs against Debian's RabbitMQ and against OpenDMS.

Each scenario takes a broker (host, port) and returns what a client observes: reply codes
and texts of exceptions, bodies and flags of deliveries, headers RabbitMQ writes. The
suite asserts both brokers observe the same. Names are unique per scenario, so scenarios
share one broker of each kind.
"""

import socket
import struct
import time

import pika
import pika.frame
import pika.spec
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, NackError, UnroutableError


def connect(broker, **kwargs):
    params = pika.ConnectionParameters(broker.host, broker.port, heartbeat=0,
                                       blocked_connection_timeout=30, **kwargs)
    return pika.BlockingConnection(params)


def closed(fn):
    """Runs `fn`; answers the channel or connection exception it met as (kind, code, text)."""
    try:
        fn()
    except ChannelClosedByBroker as e:
        return ["channel", e.reply_code, e.reply_text]
    except ConnectionClosedByBroker as e:
        return ["connection", e.reply_code, e.reply_text]
    return None


def drain(ch, queue, limit=1000):
    """Bodies (and redelivered flags) of what basic.get finds, acknowledged."""
    out = []
    for _ in range(limit):
        method, props, body = ch.basic_get(queue)
        if method is None:
            break
        out.append([body.decode(), method.redelivered])
        ch.basic_ack(method.delivery_tag)
    return out


def wait_for_count(ch, queue, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        n = ch.queue_declare(queue, passive=True).method.message_count
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


# ------------------------------------------------------------------ channel exceptions


def passive_declare_missing_queue(b):
    with connect(b) as c:
        return closed(lambda: c.channel().queue_declare("sc-missing-q", passive=True))


def passive_declare_missing_exchange(b):
    with connect(b) as c:
        return closed(lambda: c.channel().exchange_declare("sc-missing-x", passive=True))


def redeclare_queue_with_other_durability(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-redeclare", durable=True)
        out = closed(lambda: ch.queue_declare("sc-redeclare", durable=False))
        c.channel().queue_delete("sc-redeclare")
        return out


def redeclare_queue_with_other_arguments(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-redeclare-args", arguments={"x-max-length": 10})
        out = closed(lambda: ch.queue_declare("sc-redeclare-args", arguments={"x-max-length": 20}))
        c.channel().queue_delete("sc-redeclare-args")
        return out


def redeclare_exchange_with_other_type(b):
    with connect(b) as c:
        ch = c.channel()
        ch.exchange_declare("sc-redeclare-x", "direct")
        out = closed(lambda: ch.exchange_declare("sc-redeclare-x", "fanout"))
        c.channel().exchange_delete("sc-redeclare-x")
        return out


def unknown_exchange_type(b):
    with connect(b) as c:
        return closed(lambda: c.channel().exchange_declare("sc-bad-type", "no-such-type"))


def plugin_exchange_type_without_its_plugin(b):
    with connect(b) as c:
        return closed(lambda: c.channel().exchange_declare("sc-delayed", "x-delayed-message",
                                                           arguments={"x-delayed-type": "direct"}))


def publish_to_missing_exchange(b):
    with connect(b) as c:
        ch = c.channel()

        def go():
            ch.basic_publish("sc-no-such-exchange", "k", b"x")
            ch.queue_declare("", exclusive=True)

        return closed(go)


def ack_unknown_delivery_tag(b):
    with connect(b) as c:
        ch = c.channel()

        def go():
            ch.basic_ack(42)
            ch.queue_declare("", exclusive=True)

        return closed(go)


def reuse_consumer_tag(b):
    # pika refuses a duplicate tag itself; the broker's answer needs a hand-made consume.
    r = Raw(b)
    try:
        r.open_channel()
        r.sock.sendall(_method(1, pika.spec.Queue.Declare(queue="sc-reuse-tag", exclusive=True)))
        r.expect(pika.spec.Queue.DeclareOk)
        consume = _method(1, pika.spec.Basic.Consume(queue="sc-reuse-tag", consumer_tag="sc-tag"))
        r.sock.sendall(consume)
        r.expect(pika.spec.Basic.ConsumeOk)
        r.sock.sendall(consume)
        return r.close_reason()
    finally:
        r.close()


def declare_reserved_queue_name(b):
    with connect(b) as c:
        return closed(lambda: c.channel().queue_declare("amq.sc-queue"))


def declare_reserved_exchange_name(b):
    with connect(b) as c:
        return closed(lambda: c.channel().exchange_declare("amq.sc-exchange", "direct"))


def delete_system_exchange(b):
    with connect(b) as c:
        return closed(lambda: c.channel().exchange_delete("amq.direct"))


def exclusive_queue_from_other_connection(b):
    with connect(b) as owner, connect(b) as other:
        owner.channel().queue_declare("sc-exclusive", exclusive=True)
        return [
            closed(lambda: other.channel().queue_declare("sc-exclusive", passive=True)),
            closed(lambda: other.channel().basic_consume("sc-exclusive", lambda *a: None)),
            closed(lambda: other.channel().queue_delete("sc-exclusive")),
        ]


def delete_if_empty_and_if_unused(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-delete-if")
        ch.basic_publish("", "sc-delete-if", b"x")
        wait_for_count(ch, "sc-delete-if", 1)
        not_empty = closed(lambda: ch.queue_delete("sc-delete-if", if_empty=True))
        ch = c.channel()
        ch.basic_consume("sc-delete-if", lambda *a: None)
        in_use = closed(lambda: c.channel().queue_delete("sc-delete-if", if_unused=True))
        n = c.channel().queue_delete("sc-delete-if").method.message_count
        return [not_empty, in_use, n]


def consume_from_exclusive_consumed_queue(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-excl-consumer", auto_delete=False)
        ch.basic_consume("sc-excl-consumer", lambda *a: None, exclusive=True)
        out = closed(lambda: c.channel().basic_consume("sc-excl-consumer", lambda *a: None))
        c.channel().queue_delete("sc-excl-consumer")
        return out


def bad_queue_arguments(b):
    with connect(b) as c:
        return [
            closed(lambda: c.channel().queue_declare("sc-bad-args-1", arguments={"x-max-length": "ten"})),
            closed(lambda: c.channel().queue_declare("sc-bad-args-2", arguments={"x-message-ttl": -1})),
            closed(lambda: c.channel().queue_declare("sc-bad-args-3", arguments={"x-overflow": "nope"})),
            closed(lambda: c.channel().queue_declare("sc-bad-args-4", arguments={"x-queue-type": "quorum"})),
            closed(lambda: c.channel().queue_declare("sc-bad-args-5", durable=True,
                                                     arguments={"x-queue-type": "quorum"}, exclusive=True)),
        ]


def bad_expiration(b):
    with connect(b) as c:
        ch = c.channel()

        def go():
            ch.basic_publish("", "sc-nowhere", b"x", pika.BasicProperties(expiration="soon"))
            ch.queue_declare("", exclusive=True)

        return closed(go)


# ------------------------------------------------------------------ routing


def routing_by_exchange_type(b):
    with connect(b) as c:
        ch = c.channel()
        ch.exchange_declare("sc-topic", "topic", auto_delete=True)
        ch.exchange_declare("sc-headers", "headers", auto_delete=True)
        ch.exchange_declare("sc-fanout", "fanout", auto_delete=True)
        queues = {}
        for name, ex, key, args in [
            ("star", "sc-topic", "a.*", None),
            ("hash", "sc-topic", "a.#", None),
            ("mid", "sc-topic", "*.b.#", None),
            ("all", "sc-headers", "", {"x-match": "all", "f": "pdf", "t": "report"}),
            ("any", "sc-headers", "", {"x-match": "any", "f": "pdf", "t": "report"}),
            ("fan", "sc-fanout", "ignored", None),
        ]:
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(q, ex, key, arguments=args)
            queues[name] = q
        ch.exchange_bind("sc-fanout", "sc-topic", "#.z")
        for key in ["a", "a.b", "a.b.c", "x.b", "x.b.c.z"]:
            ch.basic_publish("sc-topic", key, key.encode())
        for hdrs in [{"f": "pdf", "t": "report"}, {"f": "pdf"}, {"t": "other"}]:
            ch.basic_publish("sc-headers", "", repr(sorted(hdrs.items())).encode(),
                             pika.BasicProperties(headers=hdrs))
        time.sleep(0.3)
        return {name: [body for body, _ in drain(ch, q)] for name, q in queues.items()}


def alternate_exchange_and_mandatory(b):
    with connect(b) as c:
        ch = c.channel()
        ch.exchange_declare("sc-ae", "fanout", auto_delete=True)
        ch.exchange_declare("sc-with-ae", "direct", auto_delete=True, arguments={"alternate-exchange": "sc-ae"})
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "sc-ae")
        ch.basic_publish("sc-with-ae", "nothing-bound", b"to-ae")
        returned = []
        ch.add_on_return_callback(lambda _ch, method, props, body: returned.append(
            [method.reply_code, method.reply_text, method.exchange, method.routing_key, body.decode()]))
        ch.basic_publish("amq.direct", "sc-unroutable", b"back", mandatory=True)
        c.process_data_events(time_limit=0.5)
        return [drain(ch, q), returned]


def mandatory_with_confirms(b):
    with connect(b) as c:
        ch = c.channel()
        ch.confirm_delivery()
        try:
            ch.basic_publish("amq.direct", "sc-unroutable", b"x", mandatory=True)
            return "confirmed"
        except UnroutableError as e:
            return ["unroutable", len(e.messages)]


# ------------------------------------------------------------------ deliveries


def redelivery_flags_and_order(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        for i in range(4):
            ch.basic_publish("", q, f"m{i}".encode())
        wait_for_count(ch, q, 4)
        got = [ch.basic_get(q) for _ in range(3)]
        ch.basic_nack(got[1][0].delivery_tag, requeue=True)
        ch.basic_reject(got[0][0].delivery_tag, requeue=True)
        ch.basic_ack(got[2][0].delivery_tag)
        return drain(ch, q)


def nack_multiple(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        for i in range(5):
            ch.basic_publish("", q, f"m{i}".encode())
        wait_for_count(ch, q, 5)
        tags = [ch.basic_get(q)[0].delivery_tag for _ in range(5)]
        ch.basic_nack(tags[2], multiple=True, requeue=True)
        ch.basic_ack(tags[4], multiple=True)
        return drain(ch, q)


def channel_close_requeues(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        for i in range(3):
            ch.basic_publish("", q, f"m{i}".encode())
        wait_for_count(ch, q, 3)
        ch2 = c.channel()
        ch2.basic_get(q)
        ch2.basic_get(q)
        ch2.close()
        return drain(ch, q)


def prefetch_limits_deliveries(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        for i in range(6):
            ch.basic_publish("", q, f"m{i}".encode())
        wait_for_count(ch, q, 6)
        ch.basic_qos(prefetch_count=2)
        got = []
        ch.basic_consume(q, lambda _c, m, p, body: got.append([body.decode(), m.delivery_tag]))
        c.process_data_events(time_limit=0.5)
        first = [b for b, _ in got]
        ch.basic_ack(got[-1][1], multiple=True)
        c.process_data_events(time_limit=0.5)
        return [first, [b for b, _ in got]]


def basic_get_counts(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        empty = ch.basic_get(q)[0] is None
        for i in range(3):
            ch.basic_publish("", q, f"m{i}".encode())
        wait_for_count(ch, q, 3)
        m, _, body = ch.basic_get(q, auto_ack=True)
        return [empty, m.message_count, body.decode(), ch.queue_declare(q, passive=True).method.message_count]


def priority_queue_order(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True, arguments={"x-max-priority": 5}).method.queue
        for i, p in enumerate([1, 5, 0, 3, 5, 9]):
            ch.basic_publish("", q, f"m{i}-p{p}".encode(), pika.BasicProperties(priority=p))
        wait_for_count(ch, q, 6)
        return drain(ch, q)


def transactions(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.tx_select()
        ch.basic_publish("", q, b"rolled-back")
        ch.tx_rollback()
        ch.basic_publish("", q, b"committed")
        before = ch.queue_declare(q, passive=True).method.message_count
        ch.tx_commit()
        after = wait_for_count(ch, q, 1)
        return [before, after, drain(c.channel(), q)]


# ------------------------------------------------------------------ TTL, limits, dead letters


def _without_times(headers):
    """x-death entries without their `time` (which differs between runs)."""
    out = dict(headers or {})
    if "x-death" in out:
        out["x-death"] = [{k: v for k, v in d.items() if k != "time"} for d in out["x-death"]]
    return out


def dead_letter_after_ttl(b):
    with connect(b) as c:
        ch = c.channel()
        ch.exchange_declare("sc-dlx-ttl", "fanout", auto_delete=True)
        dead = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(dead, "sc-dlx-ttl")
        q = ch.queue_declare("sc-ttl-src", exclusive=True, arguments={
            "x-message-ttl": 100, "x-dead-letter-exchange": "sc-dlx-ttl"}).method.queue
        ch.basic_publish("", q, b"expired", pika.BasicProperties(headers={"mine": "kept"}))
        wait_for_count(ch, dead, 1)
        m, props, body = ch.basic_get(dead, auto_ack=True)
        return [body.decode(), m.exchange, m.routing_key, _without_times(props.headers)]


def dead_letter_after_reject_twice(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("sc-reject-src", exclusive=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "sc-reject-dead"}).method.queue
        dead = ch.queue_declare("sc-reject-dead", exclusive=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "sc-reject-src"}).method.queue
        ch.basic_publish("", q, b"rejected", pika.BasicProperties(expiration="60000"))
        wait_for_count(ch, q, 1)
        ch.basic_reject(ch.basic_get(q)[0].delivery_tag, requeue=False)
        wait_for_count(ch, dead, 1)
        ch.basic_nack(ch.basic_get(dead)[0].delivery_tag, requeue=False)
        wait_for_count(ch, q, 1)
        ch.basic_reject(ch.basic_get(q)[0].delivery_tag, requeue=False)
        wait_for_count(ch, dead, 1)
        m, props, body = ch.basic_get(dead, auto_ack=True)
        return [body.decode(), m.routing_key, props.expiration, _without_times(props.headers)]


def per_message_expiration(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="50"))
        ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
        time.sleep(0.3)
        return drain(ch, q)


def max_length_drop_head(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True, arguments={"x-max-length": 3}).method.queue
        for i in range(6):
            ch.basic_publish("", q, f"m{i}".encode())
        wait_for_count(ch, q, 3)
        return drain(ch, q)


def max_length_bytes(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True, arguments={"x-max-length-bytes": 10}).method.queue
        for body in [b"aaaa", b"bbbb", b"cccc", b"dd"]:
            ch.basic_publish("", q, body)
        time.sleep(0.2)
        return drain(ch, q)


def reject_publish_confirms(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True, arguments={
            "x-max-length": 2, "x-overflow": "reject-publish"}).method.queue
        ch.confirm_delivery()
        outcomes = []
        for i in range(4):
            try:
                ch.basic_publish("", q, f"m{i}".encode())
                outcomes.append("ack")
            except NackError:
                outcomes.append("nack")
        return [outcomes, drain(ch, q)]


def reject_publish_dlx(b):
    with connect(b) as c:
        ch = c.channel()
        dead = ch.queue_declare("sc-rpdlx-dead", exclusive=True).method.queue
        q = ch.queue_declare("sc-rpdlx-src", exclusive=True, arguments={
            "x-max-length": 1, "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}).method.queue
        ch.basic_publish("", q, b"kept")
        ch.basic_publish("", q, b"refused")
        wait_for_count(ch, dead, 1)
        m, props, body = ch.basic_get(dead, auto_ack=True)
        return [drain(ch, q), body.decode(), _without_times(props.headers)]


def dead_letter_max_length(b):
    with connect(b) as c:
        ch = c.channel()
        dead = ch.queue_declare("", exclusive=True).method.queue
        q = ch.queue_declare("sc-maxlen-dlx", exclusive=True, arguments={
            "x-max-length": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}).method.queue
        ch.basic_publish("", q, b"first")
        ch.basic_publish("", q, b"second")
        wait_for_count(ch, dead, 1)
        m, props, body = ch.basic_get(dead, auto_ack=True)
        return [body.decode(), _without_times(props.headers), drain(ch, q)]


def quorum_delivery_limit(b):
    with connect(b) as c:
        ch = c.channel()
        q = ch.queue_declare("sc-quorum", durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 1}).method.queue
        ch.basic_publish("", q, b"poison")
        wait_for_count(ch, q, 1)
        seen = []
        for _ in range(3):
            m, props, body = ch.basic_get(q)
            if m is None:
                seen.append(None)
                continue
            seen.append([m.redelivered, (props.headers or {}).get("x-delivery-count")])
            ch.basic_nack(m.delivery_tag, requeue=True)
        ch.queue_delete(q)
        return seen


# ------------------------------------------------------------------ lifecycles


def exclusive_queue_goes_with_connection(b):
    with connect(b) as c:
        c.channel().queue_declare("sc-excl-life", exclusive=True)
    with connect(b) as c:
        return closed(lambda: c.channel().queue_declare("sc-excl-life", passive=True))


def auto_delete_queue_after_last_consumer(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-auto-del", auto_delete=True)
        exists_before_consumer = ch.queue_declare("sc-auto-del", passive=True).method.queue
        t1 = ch.basic_consume("sc-auto-del", lambda *a: None)
        t2 = ch.basic_consume("sc-auto-del", lambda *a: None)
        ch.basic_cancel(t1)
        still = ch.queue_declare("sc-auto-del", passive=True).method.consumer_count
        ch.basic_cancel(t2)
        time.sleep(0.2)
        return [exists_before_consumer, still, closed(lambda: c.channel().queue_declare("sc-auto-del", passive=True))]


def auto_delete_exchange_after_last_binding(b):
    with connect(b) as c:
        ch = c.channel()
        ch.exchange_declare("sc-auto-x", "direct", auto_delete=True)
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "sc-auto-x", "k")
        ch.queue_unbind(q, "sc-auto-x", "k")
        time.sleep(0.2)
        return closed(lambda: c.channel().exchange_declare("sc-auto-x", passive=True))


def queue_expires(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-expires", arguments={"x-expires": 200})
        time.sleep(0.8)
        return closed(lambda: c.channel().queue_declare("sc-expires", passive=True))


def server_cancel_when_queue_deleted(b):
    with connect(b) as c:
        ch = c.channel()
        ch.queue_declare("sc-cancel-notify")
        cancelled = []
        ch.basic_consume("sc-cancel-notify", lambda *a: None, consumer_tag="sc-ctag")
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        c.channel().queue_delete("sc-cancel-notify")
        c.process_data_events(time_limit=0.5)
        return cancelled


def direct_reply_to(b):
    with connect(b) as requester, connect(b) as server:
        sch = server.channel()
        sch.queue_declare("sc-rpc", exclusive=True)
        rch = requester.channel()
        replies = []
        rch.basic_consume("amq.rabbitmq.reply-to", lambda _c, m, p, body: replies.append(body.decode()),
                          auto_ack=True)
        rch.basic_publish("", "sc-rpc", b"ping", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
        deadline = time.monotonic() + 5
        req = (None, None, None)
        while req[0] is None and time.monotonic() < deadline:
            req = sch.basic_get("sc-rpc", auto_ack=True)
        reply_to = req[1].reply_to
        sch.basic_publish("", reply_to, b"pong")
        requester.process_data_events(time_limit=0.5)
        ack_mode = closed(lambda: requester.channel().basic_consume(
            "amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False))
        no_consumer = closed(lambda: (requester.channel().basic_publish(
            "", "sc-rpc", b"x", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to")),
            requester.channel().queue_declare("", exclusive=True)) and None)
        return [reply_to.startswith("amq.rabbitmq.reply-to."), replies, ack_mode, no_consumer]


def consistent_hash_exchange(b):
    with connect(b) as c:
        ch = c.channel()
        ch.exchange_declare("sc-hash", "x-consistent-hash", auto_delete=True)
        qs = []
        for _ in range(3):
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(q, "sc-hash", "10")
            qs.append(q)
        for i in range(300):
            ch.basic_publish("sc-hash", f"key-{i}", b"x")
        time.sleep(0.3)
        counts = [ch.queue_declare(q, passive=True).method.message_count for q in qs]
        return [sum(counts), all(n > 0 for n in counts)]


# ------------------------------------------------------------------ raw frames


def _frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _method(channel, method):
    return pika.frame.Method(channel, method).marshal()


class Raw:
    """A hand-driven AMQP connection, to send what no client library would."""

    def __init__(self, b):
        self.sock = socket.create_connection((b.host, b.port), timeout=5)
        self.buf = b""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(pika.spec.Connection.Start)
        client_props = {"capabilities": {"authentication_failure_close": True}}
        self.sock.sendall(_method(0, pika.spec.Connection.StartOk(
            client_properties=client_props, mechanism="PLAIN", response="\0guest\0guest")))
        tune = self.expect(pika.spec.Connection.Tune)
        self.sock.sendall(_method(0, pika.spec.Connection.TuneOk(
            channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0)))
        self.sock.sendall(_method(0, pika.spec.Connection.Open(virtual_host="/")))
        self.expect(pika.spec.Connection.OpenOk)

    def read_frame(self):
        while True:
            consumed, f = pika.frame.decode_frame(self.buf)
            if f is not None:
                self.buf = self.buf[consumed:]
                return f
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def expect(self, cls):
        f = self.read_frame()
        assert f is not None and isinstance(f.method, cls), f"expected {cls.NAME}, got {f}"
        return f.method

    def close_reason(self):
        """What the broker closes with: ("channel"|"connection", code, text, class, method)."""
        while True:
            try:
                f = self.read_frame()
            except (socket.timeout, ConnectionResetError):
                return None
            if f is None:
                return "socket closed"
            m = getattr(f, "method", None)
            if isinstance(m, (pika.spec.Connection.Close, pika.spec.Channel.Close)):
                kind = "connection" if isinstance(m, pika.spec.Connection.Close) else "channel"
                return [kind, m.reply_code, m.reply_text, m.class_id, m.method_id]

    def open_channel(self, n=1):
        self.sock.sendall(_method(n, pika.spec.Channel.Open()))
        self.expect(pika.spec.Channel.OpenOk)

    def close(self):
        self.sock.close()


def raw_frames(b):
    """Malformed input: each case on a fresh connection. (Where RabbitMQ 3.10 answers
    nothing, OpenDMS's answer is tested in test_amqp.py instead: an unknown class or method
    resets RabbitMQ's socket, a body longer than announced or a channel number above
    channel_max leaves it waiting.)"""
    cases = {}

    def case(name, setup_channel, data):
        r = Raw(b)
        try:
            if setup_channel:
                r.open_channel()
            r.sock.sendall(data)
            cases[name] = r.close_reason()
        finally:
            r.close()

    publish = _method(1, pika.spec.Basic.Publish(exchange="", routing_key="x"))
    header = pika.frame.Header(1, 3, pika.spec.BasicProperties()).marshal()
    case("method before channel.open", False, _method(1, pika.spec.Queue.Declare(queue="", exclusive=True)))
    case("second channel.open", True, _method(1, pika.spec.Channel.Open()))
    case("frame larger than frame_max", True, _frame(1, 1, b"\x00" * 200_000))
    case("bad frame end", True, struct.pack(">BHI", 1, 1, 4) + b"\x00\x14\x00\x28" + b"\x00")
    case("unknown frame type", True, _frame(9, 1, b""))
    case("arguments cut short", True, _frame(1, 1, b"\x00\x32\x00\x0a\x00"))
    case("body without header", True, publish + _frame(3, 1, b"abc"))
    case("header without publish", True, header)
    case("method instead of body", True, publish + header + _method(1, pika.spec.Basic.Qos(prefetch_count=1)))
    case("content on channel 0", True, _frame(3, 0, b"abc"))
    case("method instead of header", True, publish + _method(1, pika.spec.Basic.Qos(prefetch_count=1)))
    case("prefetch_size", True, _method(1, pika.spec.Basic.Qos(prefetch_size=10)))
    return cases


def wrong_password(b):
    try:
        pika.BlockingConnection(pika.ConnectionParameters(
            b.host, b.port, credentials=pika.PlainCredentials("guest", "wrong"), connection_attempts=1))
        return "connected"
    except pika.exceptions.ProbableAuthenticationError as e:
        return ["auth", str(e)]


def unknown_vhost(b):
    try:
        pika.BlockingConnection(pika.ConnectionParameters(b.host, b.port, virtual_host="sc-no-vhost",
                                                          connection_attempts=1))
        return "connected"
    except pika.exceptions.ProbableAccessDeniedError as e:
        return ["access", str(e)]
    except ConnectionClosedByBroker as e:
        return ["closed", e.reply_code, e.reply_text]


ALL = [
    passive_declare_missing_queue, passive_declare_missing_exchange,
    redeclare_queue_with_other_durability, redeclare_queue_with_other_arguments,
    redeclare_exchange_with_other_type, unknown_exchange_type, plugin_exchange_type_without_its_plugin,
    publish_to_missing_exchange,
    ack_unknown_delivery_tag, reuse_consumer_tag, declare_reserved_queue_name,
    declare_reserved_exchange_name, delete_system_exchange, exclusive_queue_from_other_connection,
    delete_if_empty_and_if_unused, consume_from_exclusive_consumed_queue, bad_queue_arguments,
    bad_expiration, routing_by_exchange_type, alternate_exchange_and_mandatory, mandatory_with_confirms,
    redelivery_flags_and_order, nack_multiple, channel_close_requeues, prefetch_limits_deliveries,
    basic_get_counts, priority_queue_order, transactions, dead_letter_after_ttl,
    dead_letter_after_reject_twice, per_message_expiration, max_length_drop_head, max_length_bytes,
    reject_publish_confirms, reject_publish_dlx, dead_letter_max_length, quorum_delivery_limit,
    exclusive_queue_goes_with_connection, auto_delete_queue_after_last_consumer,
    auto_delete_exchange_after_last_binding, queue_expires, server_cancel_when_queue_deleted,
    direct_reply_to, consistent_hash_exchange, raw_frames, wrong_password,
    unknown_vhost,
]


# ------------------------------------------------------------------ users and permissions
# (set up through each broker's management API: PUT /api/users and /api/permissions)


def _management(b, method, path, body=None):
    import requests
    r = requests.request(method, f"http://127.0.0.1:{b.management_port}/api{path}", json=body,
                         auth=("guest", "guest"), timeout=10)
    assert r.status_code < 300, (method, path, r.status_code, r.text)


def permissions_are_enforced(b):
    _management(b, "PUT", "/vhosts/sc-perm", {})
    _management(b, "PUT", "/users/sc-limited", {"password": "sc-pw", "tags": ""})
    _management(b, "PUT", "/permissions/sc-perm/sc-limited",
                {"configure": "^own-.*", "write": "^own-.*|^amq\\.default$", "read": "^own-.*"})
    _management(b, "PUT", "/permissions/sc-perm/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    with pika.BlockingConnection(pika.ConnectionParameters(b.host, b.port, virtual_host="sc-perm")) as admin:
        ach = admin.channel()
        ach.queue_declare("other-q")
        ach.exchange_declare("other-x", "direct")
    params = pika.ConnectionParameters(b.host, b.port, virtual_host="sc-perm", heartbeat=0,
                                       credentials=pika.PlainCredentials("sc-limited", "sc-pw"))
    with pika.BlockingConnection(params) as c:
        outcomes = {
            "declare own queue": closed(lambda: c.channel().queue_declare("own-q")),
            "declare other queue": closed(lambda: c.channel().queue_declare("not-own-q")),
            "declare other exchange": closed(lambda: c.channel().exchange_declare("not-own-x", "fanout")),
            "bind own queue to other exchange": closed(lambda: c.channel().queue_bind("own-q", "other-x", "k")),
            "consume other queue": closed(lambda: c.channel().basic_consume("other-q", lambda *a: None)),
            "get other queue": closed(lambda: c.channel().basic_get("other-q")),
            "purge other queue": closed(lambda: c.channel().queue_purge("other-q")),
            "delete other queue": closed(lambda: c.channel().queue_delete("other-q")),
        }

        def publish_other():
            ch = c.channel()
            ch.basic_publish("other-x", "k", b"x")
            ch.queue_declare("own-probe")

        outcomes["publish to other exchange"] = closed(publish_other)
    try:
        pika.BlockingConnection(pika.ConnectionParameters(
            b.host, b.port, virtual_host="/", connection_attempts=1,
            credentials=pika.PlainCredentials("sc-limited", "sc-pw")))
        outcomes["vhost without permissions"] = "connected"
    except pika.exceptions.ProbableAccessDeniedError as e:
        outcomes["vhost without permissions"] = ["access", str(e)]
    _management(b, "DELETE", "/vhosts/sc-perm")
    _management(b, "DELETE", "/users/sc-limited")
    return outcomes


ALL.append(permissions_are_enforced)
