"""`opendms rabbitmq` on its own: what survives a restart and a kill -9, delayed messages,
storage reclaimed as messages are acknowledged, and malformed input where RabbitMQ 3.10 gives
no answer to compare with (the conformance suite covers the rest)."""

import socket
import struct
import subprocess
import sys
import threading
import time

import pika
import pika.spec
import pytest
import requests

from amqp_peers import OpenDmsRabbit
from amqp_scenarios import Raw, _frame, _method
from conftest import CLIENTS


@pytest.fixture
def rabbit(tmp_path, request):
    broker = OpenDmsRabbit(tmp_path).start()
    request.node.opendms_brokers = [broker]
    yield broker
    broker.stop()


def connect(b):
    return pika.BlockingConnection(pika.ConnectionParameters(b.host, b.port, heartbeat=0))


def get_all(ch, queue):
    out = []
    while True:
        m, props, body = ch.basic_get(queue)
        if m is None:
            return out
        out.append((body.decode(), m.redelivered, props.delivery_mode))
        ch.basic_ack(m.delivery_tag)


def test_durable_definitions_and_persistent_messages_survive_restart(rabbit):
    with connect(rabbit) as c:
        ch = c.channel()
        ch.exchange_declare("orders", "topic", durable=True)
        ch.exchange_declare("audit", "fanout", durable=True)
        ch.exchange_declare("scratch", "direct", durable=False)
        ch.exchange_bind("audit", "orders", "#")
        ch.queue_declare("orders.eu", durable=True, arguments={"x-max-length": 1000})
        ch.queue_declare("audit.all", durable=True)
        ch.queue_declare("transient", durable=False)
        ch.queue_bind("orders.eu", "orders", "eu.*")
        ch.queue_bind("audit.all", "audit")
        # A durable auto-delete exchange deleted by its last unbind stays deleted, although
        # that binding (to a transient queue) was never stored.
        ch.exchange_declare("fleeting", "direct", durable=True, auto_delete=True)
        ch.queue_bind("transient", "fleeting", "k")
        ch.queue_unbind("transient", "fleeting", "k")
        ch.confirm_delivery()
        for i in range(100):
            ch.basic_publish("orders", "eu.paris", f"order-{i}".encode(), pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("orders", "eu.rome", b"not-persistent", pika.BasicProperties(delivery_mode=1))
        # Three consumed and acknowledged, two delivered and not acknowledged.
        for _ in range(3):
            m, _, _ = ch.basic_get("orders.eu")
            ch.basic_ack(m.delivery_tag)
        ch.basic_get("orders.eu")
        ch.basic_get("orders.eu")

    rabbit.restart()

    with connect(rabbit) as c:
        ch = c.channel()
        for name in ["orders", "audit"]:
            ch.exchange_declare(name, passive=True)
        for name, want in [("orders.eu", 97), ("audit.all", 100)]:
            assert ch.queue_declare(name, passive=True).method.message_count == want, name
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            c.channel().queue_declare("transient", passive=True)
        assert e.value.reply_code == 404
        for gone in ["scratch", "fleeting"]:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                c.channel().exchange_declare(gone, passive=True)
            assert e.value.reply_code == 404, gone
        ch = c.channel()
        got = get_all(ch, "orders.eu")
        assert [b for b, _, _ in got] == [f"order-{i}" for i in range(3, 100)], "order kept, acked ones gone"
        # Bindings (queue and exchange-to-exchange) still route.
        ch.basic_publish("orders", "eu.berlin", b"after-restart")
        time.sleep(0.2)
        assert [b for b, _, _ in get_all(ch, "orders.eu")] == ["after-restart"]
        assert get_all(ch, "audit.all")[-1][0] == "after-restart"
        # Arguments survive too: x-max-length still applies.
        assert ch.queue_declare("orders.eu", durable=True, arguments={"x-max-length": 1000}).method.queue


def test_confirmed_persistent_messages_survive_kill9(rabbit):
    with connect(rabbit) as c:
        c.channel().queue_declare("crash", durable=True)
    confirmed_file = rabbit.data_dir.parent / "confirmed.txt"
    publisher = subprocess.Popen([sys.executable, str(CLIENTS / "amqp_confirming_publisher.py"),
                                  rabbit.host, str(rabbit.port), "crash", "100000", str(confirmed_file)],
                                 stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if confirmed_file.exists() and sum(1 for _ in open(confirmed_file)) >= 2000:
            break
        time.sleep(0.05)
    rabbit.kill9()
    publisher.communicate(timeout=60)
    confirmed = [int(line) for line in open(confirmed_file) if line.strip()]
    assert len(confirmed) >= 2000, "the publisher got confirms before the kill"
    rabbit.start()
    with connect(rabbit) as c:
        bodies = [int(b) for b, _, _ in get_all(c.channel(), "crash")]
    missing = set(confirmed) - set(bodies)
    assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
    assert bodies == sorted(bodies), "queue order kept"
    assert len(bodies) == len(set(bodies)), "no message stored twice"


def test_delayed_messages_wait_their_delay_and_survive_restart(rabbit):
    with connect(rabbit) as c:
        ch = c.channel()
        ch.exchange_declare("later", "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
        ch.queue_declare("due", durable=True)
        ch.queue_bind("due", "later", "k")
        ch.confirm_delivery()
        for name, delay in [("third", 900), ("first", 300), ("second", 600)]:
            ch.basic_publish("later", "k", name.encode(),
                             pika.BasicProperties(delivery_mode=2, headers={"x-delay": delay}))
        ch.basic_publish("later", "k", b"restart", pika.BasicProperties(delivery_mode=2, headers={"x-delay": 2500}))
        assert ch.queue_declare("due", passive=True).method.message_count == 0, "nothing before its delay"
        deadline = time.monotonic() + 10
        while ch.queue_declare("due", passive=True).method.message_count < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [b for b, _, _ in get_all(ch, "due")] == ["first", "second", "third"], "delivered in delay order"
    rabbit.restart()
    with connect(rabbit) as c:
        ch = c.channel()
        deadline = time.monotonic() + 10
        while ch.queue_declare("due", passive=True).method.message_count < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [b for b, _, _ in get_all(ch, "due")] == ["restart"], "a pending delay outlives the restart"


def test_space_comes_back_as_messages_are_acknowledged(rabbit):
    def stored_bytes():
        return sum(f.stat().st_size for f in (rabbit.data_dir / "messages").rglob("*") if f.is_file())

    body = b"x" * 64 * 1024
    with connect(rabbit) as c:
        ch = c.channel()
        ch.queue_declare("bulk", durable=True)
        ch.confirm_delivery()
        for _ in range(800):  # 50 MiB: several 16 MiB segments
            ch.basic_publish("", "bulk", body, pika.BasicProperties(delivery_mode=2))
        full = stored_bytes()
        assert full >= 50 * 1024 * 1024
        assert len(get_all(ch, "bulk")) == 800
        deadline = time.monotonic() + 10
        while stored_bytes() > full // 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored_bytes() <= 20 * 1024 * 1024, "whole acknowledged segments were deleted"


def test_malformed_input_rabbitmq_leaves_unanswered(rabbit):
    """RabbitMQ 3.10 resets the socket on an unknown class or method and waits forever on
    a body longer than announced or a channel above channel_max; OpenDMS answers each with
    the AMQP exception the spec names, and keeps serving other connections."""
    cases = {
        "unknown class": (True, _frame(1, 1, b"\x00\x63\x00\x0a"), [503, "COMMAND_INVALID - unknown method 99.10"]),
        "unknown method": (True, _frame(1, 1, b"\x00\x3c\x00\x63"), [503, "COMMAND_INVALID - unknown method 60.99"]),
        "body longer than announced": (
            True,
            _method(1, pika.spec.Basic.Publish(exchange="", routing_key="x"))
            + pika.frame.Header(1, 3, pika.spec.BasicProperties()).marshal() + _frame(3, 1, b"abcdef"),
            [501, "FRAME_ERROR - content body of 6 bytes is longer than the 3 bytes the content header announced"]),
        "channel above channel_max": (False, _method(65535, pika.spec.Channel.Open()),
                                      [530, "NOT_ALLOWED - channel number 65535 exceeds the negotiated channel_max 2047"]),
    }
    bystander = connect(rabbit)
    for name, (open_channel, data, want) in cases.items():
        r = Raw(rabbit)
        try:
            if open_channel:
                r.open_channel()
            r.sock.sendall(data)
            kind, code, text, *_ = r.close_reason()
            assert [kind, code, text] == ["connection", *want], name
        finally:
            r.close()
    assert bystander.channel().queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")
    bystander.close()


def _nested_arguments(levels):
    """A field table whose one entry sits inside `levels` arrays, encoded by hand (pika's
    encoder recurses in Python)."""
    value = b"S" + struct.pack(">I", 4) + b"leaf"
    for _ in range(levels):
        value = b"A" + struct.pack(">I", len(value)) + value
    entry = bytes([6]) + b"x-deep" + value
    return struct.pack(">I", len(entry)) + entry


def test_tables_nested_past_the_limit_are_refused_and_the_broker_stays_up(rabbit):
    """`amq-protocol` parses nested tables recursively: 20,000 levels (100 KB, inside one
    128 KiB frame) overflowed the connection's stack and aborted the broker. OpenDMS refuses
    tables nested deeper than 64 levels with FRAME_ERROR (RabbitMQ, whose Erlang parser has
    no such limit, accepts them); 64 levels still work."""
    deep = _nested_arguments(20_000)
    declare = (b"\x00\x32\x00\x0a" + b"\x00\x00" + bytes([1]) + b"q" + b"\x00" + deep)
    properties = struct.pack(">HHQH", 60, 0, 0, 1 << 13) + deep
    cases = {
        "queue.declare arguments": (_frame(1, 1, declare),
                                    [501, "FRAME_ERROR - field table nested deeper than 64 levels", 50, 10]),
        "content headers": (_method(1, pika.spec.Basic.Publish(exchange="", routing_key="x")) + _frame(2, 1, properties),
                            [501, "FRAME_ERROR - headers nested deeper than 64 levels", 0, 0]),
    }
    bystander = connect(rabbit)
    for name, (data, want) in cases.items():
        r = Raw(rabbit)
        try:
            r.open_channel()
            r.sock.sendall(data)
            assert r.close_reason() == ["connection", *want], name
        finally:
            r.close()
    assert rabbit.proc.poll() is None, "the broker is still running"
    # 64 levels (the top table and 63 arrays) are accepted and come back as sent.
    ch = bystander.channel()
    ch.queue_declare("nested", arguments={"x-deep": [[["fine"]]]})
    r = Raw(rabbit)
    try:
        r.open_channel()
        headers = struct.pack(">H", 1 << 13) + _nested_arguments(63)
        r.sock.sendall(_method(1, pika.spec.Basic.Publish(exchange="", routing_key="nested"))
                       + _frame(2, 1, struct.pack(">HHQ", 60, 0, 4) + headers) + _frame(3, 1, b"body"))
        r.sock.sendall(_method(1, pika.spec.Basic.Get(queue="nested", no_ack=True)))
        r.expect(pika.spec.Basic.GetOk)
        header = r.read_frame()
        value = header.properties.headers["x-deep"]
        for _ in range(62):
            value = value[0]
        assert value == ["leaf"]
    finally:
        r.close()
    bystander.close()


def test_a_chain_of_exchanges_longer_than_any_stack_routes(rabbit):
    """Exchange-to-exchange bindings are followed with a stack of OpenDMS's own: a message
    routed through a chain of 20,000 exchanges, each bound to the next, used to overflow the
    connection's stack and abort the broker. It reaches the queue at the end, and an
    alternate exchange at the end of the chain still gets what nothing else routed."""
    n = 20_000
    r = Raw(rabbit)
    try:
        r.open_channel()
        frames = [_method(1, pika.spec.Exchange.Declare(exchange=f"chain{i}", type="direct", nowait=True))
                  for i in range(n)]
        frames += [_method(1, pika.spec.Exchange.Bind(destination=f"chain{i + 1}", source=f"chain{i}",
                                                      routing_key="k", nowait=True)) for i in range(n - 1)]
        r.sock.sendall(b"".join(frames))
        # The methods of one channel are handled in order: this answer comes after all of them.
        r.sock.sendall(_method(1, pika.spec.Exchange.Declare(exchange=f"chain{n - 1}", passive=True)))
        r.expect(pika.spec.Exchange.DeclareOk)
    finally:
        r.close()
    c = connect(rabbit)
    ch = c.channel()
    ch.queue_declare("end-of-chain")
    ch.queue_bind("end-of-chain", f"chain{n - 1}", routing_key="k")
    ch.exchange_declare("chain-ae", "fanout")
    ch.queue_declare("unrouted")
    ch.queue_bind("unrouted", "chain-ae")
    ch.exchange_declare("chain-last", "direct", arguments={"alternate-exchange": "chain-ae"})
    ch.exchange_bind("chain-last", f"chain{n - 1}", routing_key="k")
    ch.confirm_delivery()
    ch.basic_publish("chain0", "k", b"through")
    ch.basic_publish("chain0", "other", b"nowhere")
    assert [b for b, _, _ in get_all(ch, "end-of-chain")] == ["through"]
    # "through" went on past chain{n-1} into chain-last, whose bindings route nothing: its
    # alternate exchange gets it; "other" stopped at chain0.
    assert [b for b, _, _ in get_all(ch, "unrouted")] == ["through"]
    assert rabbit.proc.poll() is None, "the broker is still running"
    c.close()


def test_a_chain_of_queues_dead_lettering_into_each_other_longer_than_any_stack(rabbit):
    """Dead letters that dead-letter again are handled in a loop: a message passed down a
    chain of 2,000 queues, each of x-max-length 0 dead-lettering into the next, used to take
    the connection's stack one level deeper per queue, and overflowed it (the release build
    aborted). It arrives at the end of the chain with one x-death entry per queue, newest
    first, as RabbitMQ writes them. (Each hop rewrites the growing x-death, as RabbitMQ's
    does: the chain costs its length squared, ~20 s in a debug build.)"""
    n = 2000
    r = Raw(rabbit)
    try:
        r.open_channel()
        frames = [_method(1, pika.spec.Queue.Declare(queue=f"dl{i}", nowait=True, arguments={
            "x-max-length": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"dl{i + 1}"}))
            for i in range(n)]
        r.sock.sendall(b"".join(frames))
        r.sock.sendall(_method(1, pika.spec.Queue.Declare(queue=f"dl{n}")))
        r.expect(pika.spec.Queue.DeclareOk)
    finally:
        r.close()
    c = connect(rabbit)
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "dl0", b"down the chain")
    m, props, body = ch.basic_get(f"dl{n}", auto_ack=True)
    assert body == b"down the chain"
    deaths = props.headers["x-death"]
    assert len(deaths) == n
    assert [d["queue"] for d in deaths[:2]] == [f"dl{n - 1}", f"dl{n - 2}"]
    assert {d["reason"] for d in deaths} == {"maxlen"}
    assert rabbit.proc.poll() is None, "the broker is still running"
    c.close()


def test_garbage_instead_of_a_protocol_header(rabbit):
    """Anything but `AMQP 0 0 9 1` is answered with the header OpenDMS speaks, then closed."""
    with socket.create_connection((rabbit.host, rabbit.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert s.recv(8) == b"AMQP\x00\x00\x09\x01"
        assert s.recv(8) == b""


def _anon_rss_bytes(pid):
    """The broker's own resident memory: anonymous pages only. The file-backed part is the
    binary's pages (about 20 MiB for the debug build, growing with the code linked in), not
    what the broker holds for its queues."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.parametrize("durable", [False, True], ids=["transient-queue", "durable-persistent"])
def test_long_queues_page_out_and_come_back_in_order(rabbit, durable):
    """A queue far longer than its in-memory window keeps only metadata for most messages
    (bodies wait in its log) and hands every message back intact, in order, also after a
    restart."""
    count, size = 40_000, 2048  # 80 MiB of bodies: five times the window of a queue without consumers
    props = pika.BasicProperties(delivery_mode=2 if durable else 1)
    with connect(rabbit) as c:
        ch = c.channel()
        ch.queue_declare("long", durable=durable)
        for i in range(count):
            body = f"{i:08d}".encode() + bytes([i % 251]) * (size - 8)
            ch.basic_publish("", "long", body, props)
        assert ch.queue_declare("long", passive=True).method.message_count == count
        rss = _anon_rss_bytes(rabbit.proc.pid)
        assert rss < count * size / 2, f"broker holds {rss >> 20} MiB for {count * size >> 20} MiB queued"
        # Half now (through a consumer with prefetch), half after a restart (durable) or now.
        got = []
        ch.basic_qos(prefetch_count=500)

        def on_message(channel, method, _props, body):
            got.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(got) == count // 2:
                channel.stop_consuming()

        ch.basic_consume("long", on_message)
        ch.start_consuming()
    if durable:
        rabbit.restart()
    with connect(rabbit) as c:
        ch = c.channel()
        while True:
            m, _, body = ch.basic_get("long", auto_ack=True)
            if m is None:
                break
            got.append(body)
    assert len(got) == count
    for i, body in enumerate(got):
        assert body[:8] == f"{i:08d}".encode(), f"message {i} out of order: {body[:8]!r}"
        assert body[8:] == bytes([i % 251]) * (size - 8), f"message {i} body damaged"


def test_small_messages_page_back_in_only_as_the_window_drains(rabbit):
    """A queue of many small messages keeps at most its window (65,536 messages) loaded: a
    consumer taking a few does not page the rest back in. (Paging in was bounded by bytes
    alone, which small messages never reach: each page-in started the next and a lagging
    consumer's queue ended up wholly in memory.)"""
    count, window = 100_000, 65_536
    with connect(rabbit) as c:
        ch = c.channel()
        ch.queue_declare("small")
        for i in range(count):
            ch.basic_publish("", "small", b"%015d" % i)
        assert ch.queue_declare("small", passive=True).method.message_count == count
        for i in range(10):
            m, _, body = ch.basic_get("small", auto_ack=True)
            assert body == b"%015d" % i
    auth = ("guest", "guest")
    url = f"http://127.0.0.1:{rabbit.management_port}/api/queues/%2F/small"
    time.sleep(1)
    q = requests.get(url, auth=auth, timeout=30).json()
    assert q["messages"] == count - 10, q
    # Past the window, messages stay in memory only while the queue's page log opens (about
    # a hundred here).
    assert q["messages_ram"] < window + 4096, q
    assert q["messages_paged_out"] > count - 10 - window - 4096, q


def test_queues_with_consumers_keep_a_longer_backlog_in_memory(rabbit):
    """A queue with a consumer keeps up to 64 MiB of bodies in memory before paging new
    messages out (its backlog is expected to drain, and paging out and back in cost more
    broker CPU than delivering: a consumer that fell behind for a moment made the queue page
    for the rest of a benchmark run); a queue without consumers keeps 16 MiB."""
    count, size = 32_768, 1024  # 32 MiB of bodies in each queue
    auth = ("guest", "guest")

    def stats(queue):
        url = f"http://127.0.0.1:{rabbit.management_port}/api/queues/%2F/{queue}"
        return requests.get(url, auth=auth, timeout=30).json()

    with connect(rabbit) as c:
        ch = c.channel()
        ch.queue_declare("watched")
        ch.queue_declare("unwatched")
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume("watched", lambda *_: None)  # takes one message, never acks it
        body = b"x" * size
        for _ in range(count):
            ch.basic_publish("", "watched", body)
            ch.basic_publish("", "unwatched", body)
        assert ch.queue_declare("unwatched", passive=True).method.message_count == count
        time.sleep(1)
        watched, unwatched = stats("watched"), stats("unwatched")
    assert watched["messages_ready"] == count - 1, watched
    assert watched["messages_paged_out"] == 0, watched
    # 16 MiB holds about 16,000 of these; the rest (less the ~100 published while the
    # queue's page log opens) is paged out.
    assert unwatched["messages_paged_out"] > count - 16_384 - 4096, unwatched


def test_a_consumer_that_cannot_keep_up_holds_its_queues_publishers(rabbit):
    """An auto-ack consumer that stops reading its socket: the queue stops delivering to it,
    and once the backlog nears the point where the queue would page out, the publishing
    connection is not read any more (RabbitMQ's credit flow, the `flow` state), so nothing is
    paged out. When the consumer reads again, everything arrives, in order."""
    size, most = 1024, 150_000
    consumer = connect(rabbit)
    cch = consumer.channel()
    cch.queue_declare("held")
    got = []
    cch.basic_consume("held", lambda _ch, _m, _p, body: got.append(int(body[:8])), auto_ack=True)
    # From here the consumer's client reads nothing until process_data_events below.
    published = [0]
    stop = threading.Event()

    def publish():
        with connect(rabbit) as c:
            ch = c.channel()
            while not stop.is_set() and published[0] < most:
                ch.basic_publish("", "held", b"%08d" % published[0] + b"x" * (size - 8))
                published[0] += 1

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    # Held: the publisher stops making progress (a 100 ms hold lets one read through).
    seen, deadline = -1, time.monotonic() + 120
    while (published[0] - seen > 2_000 or published[0] < 40_000) and publisher.is_alive():
        assert time.monotonic() < deadline, f"{published[0]} published"
        seen = published[0]
        time.sleep(1)
    url = f"http://127.0.0.1:{rabbit.management_port}/api/queues/%2F/held"
    q = requests.get(url, auth=("guest", "guest"), timeout=30).json()
    assert publisher.is_alive(), f"all {most} published: the publisher was not held ({q})"
    # Held at three quarters of the window (65,536 messages or 64 MiB), before paging.
    assert 40_000 < q["messages_ready"] < 65_536, q
    assert q["messages_paged_out"] == 0, q
    stop.set()
    deadline = time.monotonic() + 120
    while publisher.is_alive() or len(got) < published[0]:
        assert time.monotonic() < deadline, f"{len(got)} of {published[0]} consumed"
        consumer.process_data_events(time_limit=0.2)
    assert got == list(range(published[0]))
    consumer.close()


@pytest.mark.parametrize("limit,size,reason,durable,body_size,most", [
    # 8 MiB of persistent 64 KiB messages fill the storage quota.
    ("--quota-bytes", 8 << 20, "low on disk", True, 65536, 1000),
    # Queued messages count in memory by their loaded bodies (a queue keeps up to 16 MiB of
    # them; the rest is paged out) plus their bookkeeping: 6 MiB is reached after ~5,700.
    ("--memory-limit-bytes", 6 << 20, "low on memory", False, 1024, 80_000),
], ids=["storage-quota", "memory-limit"])
def test_resource_alarm_blocks_publishers_until_consumers_make_room(tmp_path, request, limit, size, reason, durable,
                                                                    body_size, most):
    """At the instance's storage quota (persistent messages) or memory limit (queued
    messages in memory) publishers get connection.blocked and wait; consuming frees the
    resource (whole settled segments; memory), the alarm clears, they get
    connection.unblocked and their publishes go through. Nothing queued is deleted."""
    rabbit = OpenDmsRabbit(tmp_path, extra_args=[limit, str(size)]).start()
    request.node.opendms_brokers = [rabbit]
    try:
        events = []
        publisher = connect(rabbit)
        publisher.add_on_connection_blocked_callback(lambda _c, frame: events.append(("blocked", frame.method.reason)))
        publisher.add_on_connection_unblocked_callback(lambda _c, _f: events.append(("unblocked",)))
        pch = publisher.channel()
        pch.queue_declare("full", durable=durable)
        body = b"q" * body_size
        persistent = pika.BasicProperties(delivery_mode=2 if durable else 1)
        sent = 0
        # Publish (without confirms: a blocked publisher's writes just stop being read)
        # until the broker says it is blocked.
        while not events and sent < most:
            pch.basic_publish("", "full", body, persistent)
            sent += 1
            if sent % 100 == 0 or body_size > 4096:
                publisher.process_data_events(time_limit=0.01)
        assert events and events[0] == ("blocked", reason), events
        assert sent < most, "the alarm stopped the publisher"
        # Publishes sent after the block wait in the socket; what the broker took is kept.
        consumer = connect(rabbit)
        cch = consumer.channel()
        drained = len(get_all(cch, "full"))
        assert drained > 0
        deadline = time.monotonic() + 10
        while ("unblocked",) not in events and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        assert ("unblocked",) in events, events
        # Once unblocked the waiting publishes go through: none was lost.
        deadline = time.monotonic() + 10
        while drained < sent and time.monotonic() < deadline:
            drained += len(get_all(cch, "full"))
            time.sleep(0.05)
        assert drained == sent
        consumer.close()
        pch.confirm_delivery()
        pch.basic_publish("", "full", b"after", persistent)
        publisher.close()
    finally:
        rabbit.stop()
