"""Every client library: create a topic, produce 10,000 records with keys and headers,
consume them with a group of two members (each record exactly once, in order within its
partition), commit, restart the broker, produce 1,000 more and resume from the committed
offsets."""

import json
import shutil
import signal
import subprocess
import threading
import time
from collections import defaultdict

import pytest

from conftest import CLIENTS, DEBIAN_PYTHON, VENV_PYTHON, build_rust_workload

COUNT = 10_000
MORE = 1_000

CLIENT_MATRIX = [
    pytest.param(VENV_PYTHON, "confluent", id="confluent-kafka-2.x"),
    pytest.param(DEBIAN_PYTHON, "confluent", id="confluent-kafka-1.7-librdkafka-2.0.2"),
    pytest.param(VENV_PYTHON, "kafka-python", id="kafka-python-3.x"),
    pytest.param(DEBIAN_PYTHON, "kafka-python", id="kafka-python-2.0.2"),
    pytest.param(VENV_PYTHON, "aiokafka", id="aiokafka"),
]


def run_scenario(python, lib, *args, timeout=240):
    r = subprocess.run([python, str(CLIENTS / "scenario.py"), lib, *args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{lib} {args[0]} failed:\n{r.stderr[-4000:]}"
    return json.loads(r.stdout)


def check_exactly_once(records, tag, start, count):
    """records: (partition, offset, key, value, headers) in consumption order."""
    keys = [r[2] for r in records]
    dupes = len(keys) - len(set(keys))
    assert dupes == 0, f"{dupes} records delivered more than once"
    want = {f"{tag}-{i}" for i in range(start, start + count)}
    missing = want - set(keys)
    extra = set(keys) - want
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} unexpected (e.g. {sorted(extra)[:3]})"
    last = defaultdict(lambda: (-1, -1))
    for partition, offset, key, value, headers in records:
        i = int(key.split("-", 1)[1])
        assert value == f"value-{tag}-{i}"
        assert headers == {"idx": str(i), "tag": tag}
        prev_offset, prev_i = last[partition]
        assert offset > prev_offset and i > prev_i, f"partition {partition} out of order at offset {offset}"
        last[partition] = (offset, i)
    assert len(last) == 3, "records spread over the 3 partitions"


@pytest.mark.parametrize("python,lib", CLIENT_MATRIX)
def test_produce_group_consume_restart_resume(broker, python, lib):
    if python == DEBIAN_PYTHON and shutil.which(python) is None:
        pytest.fail("Debian python3 missing: scripts/setup-test-env installs it")
    topic, group = f"orders-{lib}", f"group-{lib}"

    out = run_scenario(python, lib, "produce", broker.bootstrap, topic, "--count", str(COUNT), "--tag", "a", "--create")
    assert out["acked"] == COUNT and not out["errors"], out

    out = run_scenario(python, lib, "consume", broker.bootstrap, topic, "--group", group, "--count", str(COUNT))
    assert all(n > 0 for n in out["members"]), f"both members consume: {out['members']}"
    check_exactly_once(out["records"], "a", 0, COUNT)

    broker.restart()

    out = run_scenario(python, lib, "produce", broker.bootstrap, topic, "--count", str(MORE), "--start", str(COUNT), "--tag", "b")
    assert out["acked"] == MORE and not out["errors"], out
    out = run_scenario(python, lib, "consume", broker.bootstrap, topic, "--group", group, "--count", str(MORE))
    check_exactly_once(out["records"], "b", COUNT, MORE)


def kcat_group(bootstrap, topic, group, expected, members=2, linger=3.0, timeout=120):
    """Runs `members` kcat balanced consumers until `expected` records arrived (plus a linger
    to catch duplicates), then stops them with SIGTERM so they commit and leave."""
    fmt = "%p %o %k %s %h\\n"
    procs = [subprocess.Popen(["kcat", "-b", bootstrap, "-G", group, "-q", "-u", "-f", fmt,
                               "-X", "auto.offset.reset=earliest", topic],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(members)]
    lines = [[] for _ in procs]
    lock = threading.Lock()
    reached = []

    def reader(i, p):
        for line in p.stdout:
            with lock:
                lines[i].append(line.rstrip("\n"))
                if sum(map(len, lines)) >= expected and not reached:
                    reached.append(time.time())

    threads = [threading.Thread(target=reader, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    deadline = time.time() + timeout
    while time.time() < deadline and not (reached and time.time() - reached[0] > linger):
        time.sleep(0.1)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    for t in threads:
        t.join(timeout=5)
    records = []
    for member in lines:
        for line in member:
            partition, offset, key, value, headers = line.split(" ", 4)
            h = dict(kv.split("=", 1) for kv in headers.split(",") if kv)
            records.append((int(partition), int(offset), key, value, h))
    return [len(m) for m in lines], records


def kcat_produce(bootstrap, topic, tag, start, count):
    body = "".join(f"{tag}-{i}:value-{tag}-{i}\n" for i in range(start, start + count))
    # kcat sets the same headers on every record of one run; idx is checked from the key.
    r = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", ":", "-H", f"tag={tag}",
                        "-X", "acks=all"], input=body, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_kcat_librdkafka_2_0_2(broker):
    """Debian kcat 1.7.1 on librdkafka 2.0.2; the topic is auto-created (3 partitions)."""
    topic, group = "orders-kcat", "group-kcat"
    kcat_produce(broker.bootstrap, topic, "a", 0, COUNT)
    members, records = kcat_group(broker.bootstrap, topic, group, COUNT)
    assert all(n > 0 for n in members), members
    for r in records:
        r[4]["idx"] = r[2].split("-", 1)[1]
    check_exactly_once(records, "a", 0, COUNT)

    broker.restart()
    kcat_produce(broker.bootstrap, topic, "b", COUNT, MORE)
    members, records = kcat_group(broker.bootstrap, topic, group, MORE)
    for r in records:
        r[4]["idx"] = r[2].split("-", 1)[1]
    check_exactly_once(records, "b", COUNT, MORE)


# ---------------------------------------------------------------- the rdkafka crate

RDKAFKA_BUILD_TIMEOUT = 900  # a cold build compiles the bundled librdkafka: ~1.5 min on 2 cores


@pytest.fixture(scope="module")
def rdkafka_scenario():
    """tests/rdkafka-client's `rdkafka-scenario` binary, built once per run."""
    return build_rust_workload("rdkafka-client", "rdkafka-scenario", RDKAFKA_BUILD_TIMEOUT)


def run_rdkafka(binary, *args, timeout=240):
    """run_scenario for the rdkafka crate: the same phases and JSON, no interpreter, no LIB."""
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"rdkafka-scenario {args[0]} failed:\n{r.stderr[-4000:]}"
    return json.loads(r.stdout)


def test_rdkafka_crate(broker, rdkafka_scenario):
    """test_produce_group_consume_restart_resume with the Rust rdkafka crate (librdkafka
    built from the source the crate bundles)."""
    topic, group = "orders-rdkafka", "group-rdkafka"

    out = run_rdkafka(rdkafka_scenario, "produce", broker.bootstrap, topic, "--count", COUNT, "--tag", "a", "--create")
    assert out["acked"] == COUNT and not out["errors"], out

    out = run_rdkafka(rdkafka_scenario, "consume", broker.bootstrap, topic, "--group", group, "--count", COUNT)
    assert all(n > 0 for n in out["members"]), f"both members consume: {out['members']}"
    check_exactly_once(out["records"], "a", 0, COUNT)

    broker.restart()

    out = run_rdkafka(rdkafka_scenario, "produce", broker.bootstrap, topic, "--count", MORE, "--start", COUNT,
                      "--tag", "b")
    assert out["acked"] == MORE and not out["errors"], out
    out = run_rdkafka(rdkafka_scenario, "consume", broker.bootstrap, topic, "--group", group, "--count", MORE)
    check_exactly_once(out["records"], "b", COUNT, MORE)
