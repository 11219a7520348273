"""The AMQP client matrix: one workload, eight client libraries, against `opendms rabbitmq`.

Each program under clients/amqp/ (and tests/amqp-lapin-client) runs the same workload in two
phases, each a process of its own that prints one JSON object:

  produce HOST PORT TAG
    declares durable exchanges TAG-direct, TAG-fanout, TAG-topic, TAG-headers (their types)
    and TAG-dlx (fanout); durable queues TAG-direct-q (bound with "work"), TAG-fanout-q,
    TAG-topic-q ("*.orders.#"), TAG-headers-q (x-match all, kind=order, region=eu),
    TAG-dead (bound to TAG-dlx), TAG-keep, TAG-ttl (x-message-ttl 100, dead letters to
    TAG-dlx) and TAG-rejected (dead letters to TAG-dlx);
    publishes msg-0 .. msg-9999 persistent with publisher confirms to TAG-direct and counts
    the acks and nacks;
    consumes them with two consumers (a channel each, basic.qos 50): the first delivery of
    every 1000th message is nacked with requeue (kombu: basic.reject requeue, py-amqp has no
    basic.nack), everything else acked, until all 10,000 are acked;
    lets "expire-me" expire in TAG-ttl and basic.rejects "reject-me" from TAG-rejected
    (requeue=false), and reads both from TAG-dead with their first x-death entry;
    publishes keep-0 .. keep-499 persistent with confirms to TAG-keep and one message through
    each exchange, and counts every queue's messages (passive declares).
  verify HOST PORT TAG  (after the broker restarted on the same data directory)
    passive-declares every exchange and queue; publishes one more message through the topic
    exchange ("us.orders") and the headers exchange; drains the four bound queues and
    TAG-keep with basic.get.

The module builds nothing but the lapin client (like test_clients.py builds the rdkafka
crate's); scripts/setup-test-env installs amqplib and builds the Java jar and the Go binary.
"""

import re
import subprocess

import pytest

from amqp_peers import OpenDmsRabbit
from conftest import CLIENTS, REPO, VENV_PYTHON, build_rust_workload, run_client

AMQP = CLIENTS / "amqp"
NODE_DIR = AMQP / "node"
JAVA_JAR = REPO / "target" / "amqp-java-client" / "amqp-java-workload.jar"
GO_BINARY = REPO / "target" / "amqp-go-client" / "amqp-go-workload"
LAPIN_BUILD_TIMEOUT = 900  # a cold build: about a minute on 2 cores
RUN_TIMEOUT = 300

COUNT, KEEP, NACKED = 10_000, 500, 10
QUEUES = ("direct-q", "fanout-q", "topic-q", "headers-q", "ttl", "rejected", "dead", "keep")
# Every queue's message count after produce (and so after the restart, before verify publishes).
QUEUE_COUNTS = {"direct-q": 1, "fanout-q": 1, "topic-q": 1, "headers-q": 1, "ttl": 0, "rejected": 0, "dead": 0,
                "keep": KEEP}


def expected_produce(tag):
    return {
        "published": {"acked": COUNT, "nacked": 0},
        # Every body exactly once acked; the NACKED requeued deliveries came back redelivered.
        "consumed": {"received": COUNT + NACKED, "distinct": COUNT, "redelivered": NACKED, "nacked": NACKED,
                     "consumers": 2},
        "expired": {"body": "expire-me", "reason": "expired", "queue": f"{tag}-ttl", "count": 1},
        "rejected": {"body": "reject-me", "reason": "rejected", "queue": f"{tag}-rejected", "count": 1},
        "kept": {"acked": KEEP, "nacked": 0},
        "queues": QUEUE_COUNTS,
    }


def expected_verify():
    return {
        "exchanges": ["direct", "dlx", "fanout", "headers", "topic"],
        "queues": QUEUE_COUNTS,
        "drained": {"direct-q": ["via-direct"], "fanout-q": ["via-fanout"], "topic-q": ["via-topic", "after-topic"],
                    "headers-q": ["via-headers", "after-headers"]},
        "keep": {"count": KEEP, "in_order": True, "persistent": True},
    }


def check(phase, got, want):
    """Compares section by section and reports every section that differs."""
    wrong = [f"  {key}: got {got.get(key)!r}\n  {' ' * len(key)}  want {value!r}"
             for key, value in want.items() if got.get(key) != value]
    extra = sorted(set(got) - set(want))
    assert not wrong and not extra, f"{phase}:\n" + "\n".join(wrong) + (f"\n  unexpected keys {extra}" if extra else "")


# ---------------------------------------------------------------- how each client is run


def _built(path, what):
    if not path.exists():
        pytest.fail(f"{path} is missing: scripts/setup-test-env {what}")
    return path


def python_client(script):
    return lambda request: [VENV_PYTHON, str(AMQP / script)]


def amqplib(request):
    _built(NODE_DIR / "node_modules" / "amqplib", "installs amqplib (npm ci)")
    return ["node", str(NODE_DIR / "workload.js")]


def java_client(request):
    return ["java", "-jar", str(_built(JAVA_JAR, "builds it (mvn package)"))]


def go_client(request):
    return [str(_built(GO_BINARY, "builds it (go build)"))]


def lapin(request):
    return [str(request.getfixturevalue("lapin_binary"))]


@pytest.fixture(scope="module")
def lapin_binary():
    """tests/amqp-lapin-client's binary, built once per run."""
    return build_rust_workload("amqp-lapin-client", "amqp-lapin-workload", LAPIN_BUILD_TIMEOUT)


CLIENT_MATRIX = [
    pytest.param(python_client("pika_blocking.py"), id="pika-1.4-blocking"),
    pytest.param(python_client("pika_select.py"), id="pika-1.4-select"),
    pytest.param(python_client("aio_pika_asyncio.py"), id="aio-pika-10"),
    pytest.param(python_client("kombu_pyamqp.py"), id="kombu-5.7-pyamqp"),
    pytest.param(amqplib, id="amqplib-node"),
    pytest.param(java_client, id="java-amqp-client-5"),
    pytest.param(go_client, id="go-amqp091"),
    pytest.param(lapin, id="rust-lapin-4"),
]


@pytest.fixture
def rabbit(tmp_path, request):
    broker = OpenDmsRabbit(tmp_path).start()
    request.node.opendms_brokers = [broker]
    yield broker
    broker.stop()


@pytest.mark.parametrize("command", CLIENT_MATRIX)
def test_client_workload_survives_restart(command, rabbit, request):
    argv = command(request)
    tag = re.sub(r"[^a-z0-9]+", "-", request.node.callspec.id)

    out = run_client([*argv, "produce", rabbit.host, str(rabbit.port), tag], timeout=RUN_TIMEOUT)
    check("produce", out, expected_produce(tag))

    rabbit.restart()

    out = run_client([*argv, "verify", rabbit.host, str(rabbit.port), tag], timeout=RUN_TIMEOUT)
    check("verify after restart", out, expected_verify())


def test_workload_observes_the_same_on_rabbitmq(reference_rabbitmq, rabbit):
    """The produce phase (pika BlockingConnection) against Debian's RabbitMQ 3.10 gives the
    numbers this module expects, and OpenDMS gives the same JSON: the workload is right."""
    argv, tag = [VENV_PYTHON, str(AMQP / "pika_blocking.py"), "produce"], "reference-pika"
    want = run_client([*argv, reference_rabbitmq.host, str(reference_rabbitmq.port), tag], timeout=RUN_TIMEOUT)
    check("produce on RabbitMQ", want, expected_produce(tag))
    got = run_client([*argv, rabbit.host, str(rabbit.port), tag], timeout=RUN_TIMEOUT)
    assert got == want
