"""Every client library against the real broker: create a 3-partition topic, produce 10,000
records with keys and headers, consume them with a group of two members running at once
(each record exactly once, in order within its partition, keys, values and headers
intact), commit, restart the broker on the same data directory, produce 1,000 more, and
resume the group: it gets exactly the 1,000 new records.

The per-client logic lives in clients/ (see clients/common.py for the interface); each
phase runs as a subprocess under the client's own interpreter.
"""

import os
from pathlib import Path

import pytest

from conftest import CLIENTS, DEBIAN_PYTHON, RDKAFKA_CLIENT, VENV_PYTHON, check_records, run_client

COUNT = 10_000
MORE = 1_000
PHASE_TIMEOUT = 120  # seconds; a hang guard inside each client phase

CLIENT_COMMANDS = {
    # id: (command, what it needs)
    "confluent-kafka-2.x": [VENV_PYTHON, str(CLIENTS / "confluent_client.py")],
    "confluent-kafka-1.7-librdkafka-2.0.2": [DEBIAN_PYTHON, str(CLIENTS / "confluent_client.py")],
    "kafka-python-3.x": [VENV_PYTHON, str(CLIENTS / "kafka_python_client.py")],
    "kafka-python-2.0.2": [DEBIAN_PYTHON, str(CLIENTS / "kafka_python_client.py")],
    "aiokafka": [VENV_PYTHON, str(CLIENTS / "aiokafka_client.py")],
    "rdkafka-rust": [RDKAFKA_CLIENT],
}


def client_command(name):
    cmd = CLIENT_COMMANDS[name]
    if not (Path(cmd[0]).is_file() and os.access(cmd[0], os.X_OK)):
        pytest.fail(f"{cmd[0]} is missing: scripts/setup-test-env and scripts/test provide it")
    return cmd


def phase(cmd, name, bootstrap, topic, *args):
    return run_client([*cmd, name, bootstrap, topic, "--timeout", str(PHASE_TIMEOUT), *map(str, args)],
                      timeout=PHASE_TIMEOUT + 120)


def check_produced(out, count):
    assert out["acked"] == count and not out["errors"] and not out["unflushed"], \
        f"{out['acked']} of {count} records acknowledged; errors: {out['errors']}, unflushed: {out['unflushed']}"


def check_group(out, tag, start, count, every_member=False, headers_of=None):
    assert not out["commit_errors"], f"offset commits failed: {out['commit_errors']}"
    check_records(out["records"], tag, start, count, headers_of=headers_of)
    if every_member:
        assert all(n > 0 for n in out["members"]), f"every group member gets records: {out['members']}"


@pytest.mark.parametrize("client", list(CLIENT_COMMANDS))
def test_produce_group_consume_restart_resume(broker, client):
    cmd = client_command(client)
    topic, group = f"orders-{client}", f"group-{client}"

    check_produced(phase(cmd, "produce", broker.bootstrap, topic, "--count", COUNT, "--tag", "a", "--create"), COUNT)
    out = phase(cmd, "consume", broker.bootstrap, topic, "--group", group, "--count", COUNT)
    check_group(out, "a", 0, COUNT, every_member=True)

    broker.restart()

    check_produced(phase(cmd, "produce", broker.bootstrap, topic, "--count", MORE, "--start", COUNT, "--tag", "b"),
                   MORE)
    out = phase(cmd, "resume", broker.bootstrap, topic, "--group", group, "--count", MORE)
    check_group(out, "b", COUNT, MORE)


def kcat_headers(tag, _i):
    return {"tag": tag, "src": "kcat"}


def test_kcat_librdkafka_2_0_2(broker):
    """Debian kcat (librdkafka 2.0.2). The topic is auto-created by a metadata request with 3
    partitions; the two balanced consumers start first (kcat cannot pause partitions) and
    the 10,000 records are produced once both have partitions."""
    cmd = [VENV_PYTHON, str(CLIENTS / "kcat_client.py")]
    topic, group = "orders-kcat", "group-kcat"

    out = phase(cmd, "consume", broker.bootstrap, topic, "--group", group, "--count", COUNT, "--tag", "a",
                "--create", "--produce-after-join")
    assert out["released"], "both kcat members got partitions:\n" + "\n".join(out["kcat_stderr_tail"])
    check_produced(out["produced"], COUNT)
    check_group(out, "a", 0, COUNT, every_member=True, headers_of=kcat_headers)

    broker.restart()

    check_produced(phase(cmd, "produce", broker.bootstrap, topic, "--count", MORE, "--start", COUNT, "--tag", "b"),
                   MORE)
    out = phase(cmd, "resume", broker.bootstrap, topic, "--group", group, "--count", MORE)
    check_group(out, "b", COUNT, MORE, headers_of=kcat_headers)
