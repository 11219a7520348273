"""The AMQP client-matrix workload (see tests/integration/test_amqp_clients.py) with pika's
SelectConnection: callbacks only, one I/O loop, no blocking call.
Usage: pika_select.py produce|verify HOST PORT TAG; prints one JSON object."""

import json
import sys
from collections import OrderedDict
from functools import partial

import pika
from pika import spec

COUNT, KEEP = 10_000, 500
MATCH = {"kind": "order", "region": "eu"}


def names(tag):
    ex = {t: f"{tag}-{t}" for t in ("direct", "fanout", "topic", "headers", "dlx")}
    q = {s: f"{tag}-{s}" for s in ("direct-q", "fanout-q", "topic-q", "headers-q", "ttl", "rejected", "dead", "keep")}
    return ex, q


def chain(steps, then):
    """Runs steps one after another; each is called with callback= the start of the next."""
    def run(i, *_):
        if i < len(steps):
            steps[i](callback=partial(run, i + 1))
        else:
            then()
    run(0)


class Workload:
    def __init__(self, phase, tag, params):
        self.phase, (self.ex, self.q), self.out, self.error = phase, names(tag), {}, None
        self.pending, self.next_tag, self.on_settled = OrderedDict(), 0, None
        self.conn = pika.SelectConnection(params, on_open_callback=self.on_open,
                                          on_open_error_callback=self.on_open_error,
                                          on_close_callback=lambda *_: self.conn.ioloop.stop())

    def on_open_error(self, _conn, err):
        self.error = err
        self.conn.ioloop.stop()

    def on_open(self, conn):
        conn.channel(on_open_callback=self.on_channel)

    def on_channel(self, ch):
        self.ch = ch
        ch.add_on_close_callback(self.on_channel_closed)
        ch.confirm_delivery(self.on_confirm, callback=lambda _: getattr(self, self.phase)())

    def on_channel_closed(self, _ch, reason):
        if self.error is None and not self.out.get("done"):
            self.error = reason
            self.conn.close()

    # ------------------------------------------------------------ publishing with confirms

    def publish(self, exchange, key, bodies, callback, headers=None):
        """Publishes on the confirm channel; callback({"acked": n, "nacked": n}) once every
        message is confirmed."""
        result, props = {"acked": 0, "nacked": 0}, pika.BasicProperties(delivery_mode=2, headers=headers)
        for body in bodies:
            self.next_tag += 1
            self.pending[self.next_tag] = result
            self.ch.basic_publish(exchange, key, body.encode(), props)
        self.on_settled = partial(callback, result)

    def on_confirm(self, frame):
        m = frame.method
        kind = "acked" if isinstance(m, spec.Basic.Ack) else "nacked"
        if m.multiple:
            while self.pending and next(iter(self.pending)) <= m.delivery_tag:
                self.pending.popitem(last=False)[1][kind] += 1
        else:
            self.pending.pop(m.delivery_tag)[kind] += 1
        if not self.pending:
            self.on_settled()

    def record(self, key, callback, value):
        self.out[key] = value
        callback()

    # ------------------------------------------------------------ produce

    def produce(self):
        chain([self.declare, self.publish_work, self.consume, self.expire, self.reject,
               self.keep, self.route, self.queue_counts], self.finish)

    def declare(self, callback):
        ch, ex, q = self.ch, self.ex, self.q
        steps = [partial(ch.exchange_declare, ex[k], k, durable=True) for k in ("direct", "fanout", "topic", "headers")]
        steps.append(partial(ch.exchange_declare, ex["dlx"], "fanout", durable=True))
        steps += [partial(ch.queue_declare, q[s], durable=True)
                  for s in ("direct-q", "fanout-q", "topic-q", "headers-q", "dead", "keep")]
        steps.append(partial(ch.queue_declare, q["ttl"], durable=True,
                             arguments={"x-message-ttl": 100, "x-dead-letter-exchange": ex["dlx"]}))
        steps.append(partial(ch.queue_declare, q["rejected"], durable=True,
                             arguments={"x-dead-letter-exchange": ex["dlx"]}))
        steps += [partial(ch.queue_bind, q["direct-q"], ex["direct"], "work"),
                  partial(ch.queue_bind, q["fanout-q"], ex["fanout"], ""),
                  partial(ch.queue_bind, q["topic-q"], ex["topic"], "*.orders.#"),
                  partial(ch.queue_bind, q["headers-q"], ex["headers"], "", {"x-match": "all", **MATCH}),
                  partial(ch.queue_bind, q["dead"], ex["dlx"], "")]
        chain(steps, callback)

    def publish_work(self, callback):
        self.publish(self.ex["direct"], "work", (f"msg-{i}" for i in range(COUNT)),
                     partial(self.record, "published", callback))

    def consume(self, callback):
        """Two consumers (a channel each, basic.qos 50) on the direct queue; the first delivery
        of every 1000th message is nacked with requeue, all others acked."""
        acked, bodies, per_consumer, channels, tags = set(), [], [0, 0], [], []
        counts = {"redelivered": 0, "nacked": 0}

        def open_channel(callback):
            def opened(ch):
                channels.append(ch)
                ch.basic_qos(prefetch_count=50, callback=callback)
            self.conn.channel(on_open_callback=opened)

        def on_message(n, ch, method, _props, body):
            body = body.decode()
            bodies.append(body)
            per_consumer[n] += 1
            counts["redelivered"] += method.redelivered
            if int(body.split("-")[1]) % 1000 == 0 and not method.redelivered:
                ch.basic_nack(method.delivery_tag, requeue=True)
                counts["nacked"] += 1
                return
            ch.basic_ack(method.delivery_tag)
            acked.add(body)
            if len(acked) == COUNT:
                chain([partial(c.basic_cancel, t) for c, t in zip(channels, tags)], done)

        def done():
            for ch in channels:
                ch.close()
            self.record("consumed", callback, {"received": len(bodies), "distinct": len(set(bodies)), **counts,
                                               "consumers": sum(1 for n in per_consumer if n)})

        def start(*_):
            tags.extend(ch.basic_consume(self.q["direct-q"], partial(on_message, n)) for n, ch in enumerate(channels))

        chain([open_channel, open_channel], start)

    def first_message(self, queue, handle, callback):
        """Consumes `queue` until one message arrives: handle(method, props, body), cancel, callback()."""
        def on_message(_ch, method, props, body):
            handle(method, props, body)
            self.ch.basic_cancel(tag, callback=lambda _: callback())
        tag = self.ch.basic_consume(queue, on_message)

    def death(self, key, callback):
        """Records the dead-lettered message of the dead queue: its body and first x-death entry."""
        def handle(method, props, body):
            self.ch.basic_ack(method.delivery_tag)
            d = props.headers["x-death"][0]
            self.out[key] = {"body": body.decode(), "reason": d["reason"], "queue": d["queue"], "count": d["count"]}
        self.first_message(self.q["dead"], handle, callback)

    def expire(self, callback):
        self.publish("", self.q["ttl"], ["expire-me"], lambda _: self.death("expired", callback))

    def reject(self, callback):
        def handle(method, _props, _body):
            self.ch.basic_reject(method.delivery_tag, requeue=False)
        self.publish("", self.q["rejected"], ["reject-me"], lambda _: self.first_message(
            self.q["rejected"], handle, lambda: self.death("rejected", callback)))

    def keep(self, callback):
        self.publish("", self.q["keep"], (f"keep-{i}" for i in range(KEEP)), partial(self.record, "kept", callback))

    def route(self, callback):
        ex = self.ex
        chain([lambda callback: self.publish(ex["direct"], "work", ["via-direct"], callback),
               lambda callback: self.publish(ex["fanout"], "", ["via-fanout"], callback),
               lambda callback: self.publish(ex["topic"], "eu.orders.created", ["via-topic"], callback),
               lambda callback: self.publish(ex["headers"], "", ["via-headers"], callback, headers=MATCH)],
              callback)

    def queue_counts(self, callback):
        counts = self.out["queues"] = {}

        def count(s, callback):
            def ok(frame):
                counts[s] = frame.method.message_count
                callback()
            self.ch.queue_declare(self.q[s], passive=True, callback=ok)
        chain([partial(count, s) for s in self.q], callback)

    # ------------------------------------------------------------ verify

    def verify(self):
        ex = self.ex
        self.out["exchanges"] = sorted(ex)
        self.out["drained"] = {}
        steps = [partial(self.ch.exchange_declare, name, passive=True) for name in ex.values()]
        steps += [self.queue_counts,
                  lambda callback: self.publish(ex["topic"], "us.orders", ["after-topic"], callback),
                  lambda callback: self.publish(ex["headers"], "", ["after-headers"], callback,
                                                headers={**MATCH, "note": "after restart"})]
        steps += [partial(self.drain_bodies, s) for s in ("direct-q", "fanout-q", "topic-q", "headers-q")]
        steps.append(lambda callback: self.drain(self.q["keep"], partial(self.check_keep, callback)))
        chain(steps, self.finish)

    def drain(self, queue, callback):
        """basic.get (acknowledged) until Basic.GetEmpty; callback([(body, delivery_mode)])."""
        got = []

        def on_ok(ch, method, props, body):
            ch.basic_ack(method.delivery_tag)
            got.append((body.decode(), props.delivery_mode))
            ch.basic_get(queue, on_ok)
        self.ch.add_callback(lambda _frame: callback(got), [spec.Basic.GetEmpty], one_shot=True)
        self.ch.basic_get(queue, on_ok)

    def drain_bodies(self, s, callback):
        def got(messages):
            self.out["drained"][s] = [b for b, _ in messages]
            callback()
        self.drain(self.q[s], got)

    def check_keep(self, callback, kept):
        self.out["keep"] = {"count": len(kept), "in_order": [b for b, _ in kept] == [f"keep-{i}" for i in range(KEEP)],
                            "persistent": all(mode == 2 for _, mode in kept)}
        callback()

    def finish(self):
        self.out["done"] = True
        self.conn.close()


def main():
    phase, host, port, tag = sys.argv[1:5]
    w = Workload(phase, tag, pika.ConnectionParameters(host, int(port), heartbeat=0))
    w.conn.ioloop.start()
    if w.error is not None or not w.out.pop("done", False):
        sys.exit(f"pika SelectConnection workload failed: {w.error!r}")
    print(json.dumps(w.out))


if __name__ == "__main__":
    main()
