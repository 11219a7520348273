"""Starts the real `opendms kafka` binary for the tests and runs the client scripts.

The broker runs on loopback only: `--listen 127.0.0.1:0` gives every broker its own free
port (127.0.0.1, 127.0.0.2, 127.0.0.3), read back from the `broker N listening on ADDR`
lines it prints before `ready`. Its stderr goes to a log file next to its data directory;
when a test fails, the tail of that log is added to the failure report.
"""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("OPENDMS_BIN", str(REPO / "target" / "debug" / "opendms"))
CLIENTS = Path(__file__).resolve().parent / "clients"
# The virtualenv running pytest: confluent-kafka 2.x, kafka-python 3.x, aiokafka.
VENV_PYTHON = sys.executable
# Debian's interpreter: python3-confluent-kafka 1.7.0 (librdkafka 2.0.2) and
# python3-kafka (kafka-python 2.0.2).
DEBIAN_PYTHON = "/usr/bin/python3"

LISTEN_RE = re.compile(r"^broker (\d+) listening on (\S+)$")
START_TIMEOUT = 30
STOP_TIMEOUT = 30


class Broker:
    """One `opendms kafka` process and its data directory; it can be stopped, killed and
    started again on the same data directory (and, with explicit `listen` addresses, on
    the same addresses)."""

    def __init__(self, workdir: Path, name="kafka", listen=("127.0.0.1:0",), brokers=3, extra_args=()):
        self.name = name
        self.data_dir = workdir / name
        self.log_path = workdir / f"{name}.stderr.log"
        self.listen = list(listen)
        self.brokers = brokers
        self.extra_args = list(extra_args)
        self.proc = None
        self.addresses = []
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return ",".join(self.addresses)

    def command(self):
        args = [BIN, "kafka", "--data-dir", str(self.data_dir)]
        if len(self.listen) == 1:
            args += ["--brokers", str(self.brokers)]
        for addr in self.listen:
            args += ["--listen", addr]
        return args + self.extra_args

    def start(self, timeout=START_TIMEOUT):
        assert self.proc is None, "already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"---- start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                         stdin=subprocess.DEVNULL, text=True)
        lines = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        addresses = {}
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill9()
                raise RuntimeError(f"broker printed no `ready` within {timeout}s\n{self.log_tail()}")
            if line is None:
                code = self.proc.wait()
                self.proc = None
                raise RuntimeError(f"broker exited with {code} before `ready`\n{self.log_tail()}")
            m = LISTEN_RE.match(line)
            if m:
                addresses[int(m.group(1))] = m.group(2)
            elif line == "ready":
                break
        self.addresses = [addresses[i] for i in sorted(addresses)]
        return self

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stops the broker with `sig` and returns its exit code (None if it had to be
        killed because it did not stop in time)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def kill9(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self):
        code = self.stop()
        assert code == 0, f"broker did not stop cleanly on SIGTERM (exit {code})\n{self.log_tail()}"
        return self.start()

    def log_tail(self, lines=60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no broker log)"
        problems = [line for line in text if re.search(r"\b(WARN|ERROR)\b|panicked", line)]
        out = [f"---- {self.log_path} ({len(text)} lines)"]
        if problems:
            out += [f"---- last warnings/errors ({len(problems)} in all):"] + problems[-25:]
        out += [f"---- last {lines} lines:"] + text[-lines:]
        return "\n".join(out)


def _pump(stream, lines):
    for line in stream:
        lines.put(line.strip())
    lines.put(None)


def free_port(hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3")) -> int:
    """A TCP port that is free on every one of `hosts` (to restart a broker on the same
    addresses after kill -9)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for host in hosts:
                with socket.socket() as t:
                    t.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on all of " + ", ".join(hosts))


@pytest.fixture
def broker_factory(tmp_path, request):
    """Starts brokers with the given options; all of them are stopped at teardown."""
    started = []
    request.node.opendms_brokers = started

    def make(name="kafka", **kwargs):
        b = Broker(tmp_path, name=name, **kwargs)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory):
    """Three brokers on 127.0.0.1-3, free ports, default options."""
    return broker_factory()


@pytest.fixture
def serve_factory(tmp_path, request):
    """Starts `opendms serve` processes (control plane plus brokers); stopped at teardown."""
    from control_plane import Server

    started = []
    request.node.opendms_servers = started

    def make(name="serve", env=None, unset=()):
        """`env` adds to the server's environment; `unset` removes variables (to run with
        their defaults)."""
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        s = Server(BIN, workdir, http_port=free_port(("127.0.0.1",)), broker_port=free_port(("127.0.0.1",)))
        s.env.update(env or {})
        for var in unset:
            s.env.pop(var, None)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(serve_factory):
    return serve_factory()


@pytest.fixture(scope="session")
def reference_rabbitmq(tmp_path_factory):
    """Debian's RabbitMQ 3.10 on loopback, one node for the whole session: the reference the
    AMQP conformance suite and the AMQP client matrix compare `opendms rabbitmq` against."""
    from amqp_peers import DebianRabbit, rabbitmq_installed  # amqp_peers imports this module

    if not rabbitmq_installed():
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is not installed (scripts/setup-test-env installs it)")
        pytest.skip("rabbitmq-server is not installed; run scripts/setup-test-env")
    peer = DebianRabbit(tmp_path_factory.mktemp("rabbitmq-reference")).start()
    yield peer
    peer.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for b in getattr(item, "opendms_brokers", []):
            rep.sections.append((f"opendms broker `{b.name}` stderr", b.log_tail()))
        for s in getattr(item, "opendms_servers", []):
            rep.sections.append(("opendms serve stderr", s.log_tail()))


# ---------------------------------------------------------------- client scripts


def build_rust_workload(crate: str, binary: str, timeout: int) -> Path:
    """Builds a standalone workload crate `tests/<crate>` (release, its own Cargo.lock, its own
    target directory `target/<crate>`) and returns its `binary`. The test modules call it once
    per run from a module fixture; a build failure fails the test that needed it."""
    manifest = REPO / "tests" / crate / "Cargo.toml"
    target = REPO / "target" / crate
    cmd = ["cargo", "build", "--release", "--locked", "--manifest-path", str(manifest)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    except FileNotFoundError:
        pytest.fail(f"cargo is not on PATH: tests/{crate} cannot be built")
    except subprocess.TimeoutExpired:
        pytest.fail(f"building tests/{crate} took more than {timeout}s")
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}"
    path = target / "release" / binary
    assert path.is_file(), f"the build succeeded but {path} is missing"
    return path


def run_client(argv, timeout=300, env=None):
    """Runs one client script or binary and returns the JSON object it prints."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(f"{' '.join(map(str, argv[:4]))} ... hung for {timeout}s; stderr tail:\n{err[-3000:]}")
    assert r.returncode == 0, f"{' '.join(map(str, argv))} exited {r.returncode}; stderr tail:\n{r.stderr[-4000:]}"
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON from {argv[:3]}: stdout {r.stdout[-1000:]!r}\nstderr tail:\n{r.stderr[-3000:]}")


def expected_record(tag, i):
    """The key, value and headers the client scripts send for record `i` of run `tag`."""
    return f"{tag}-{i}", f"value-{tag}-{i}", {"idx": str(i), "tag": tag}


def check_records(records, tag, start, count, partitions=3, headers_of=None):
    """Checks a group's consumption: `records` is [partition, offset, key, value, headers]
    in the order each member received them (member after member). Every record of
    tag-start .. tag-(start+count-1) arrives exactly once with its value and headers,
    nothing else arrives, and each partition's records come in offset order."""
    headers_of = headers_of or (lambda tag, i: expected_record(tag, i)[2])
    seen = defaultdict(int)
    for _, _, key, _, _ in records:
        seen[key] += 1
    dupes = {k: n for k, n in seen.items() if n > 1}
    want = {expected_record(tag, i)[0] for i in range(start, start + count)}
    missing = want - seen.keys()
    extra = seen.keys() - want
    problems = []
    if dupes:
        problems.append(f"{len(dupes)} records delivered more than once, e.g. {sorted(dupes.items())[:3]}")
    if missing:
        problems.append(f"{len(missing)} records missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{len(extra)} unexpected records, e.g. {sorted(extra)[:3]}")
    assert not problems, f"{len(records)} records received, {count} expected: " + "; ".join(problems)

    last = {}
    for partition, offset, key, value, headers in records:
        i = int(key.rsplit("-", 1)[1])
        _, want_value, _ = expected_record(tag, i)
        assert value == want_value, f"record {key}: value {value!r}, expected {want_value!r}"
        assert headers == headers_of(tag, i), f"record {key}: headers {headers!r}, expected {headers_of(tag, i)!r}"
        if partition in last:
            prev_offset, prev_i = last[partition]
            assert offset > prev_offset, f"partition {partition}: offset {offset} after {prev_offset}"
            assert i > prev_i, f"partition {partition}: record {key} after {tag}-{prev_i} (produce order broken)"
        last[partition] = (offset, i)
    assert sorted(last) == list(range(partitions)), f"records came from partitions {sorted(last)}"
