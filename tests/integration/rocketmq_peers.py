"""The two RocketMQ clusters the conformance suite and the benchmark compare: Apache RocketMQ
4.9.7 (name server and one broker, from the Maven Central classpath in
target/apache-rocketmq/lib) and `opendms rocketmq`, configured alike.

Apache's name server and broker bind every interface and cannot be told otherwise, so they
run only inside a network namespace with nothing but loopback (`unshare --net`); whoever
uses this module runs there too (see rocketmq_conformance_run.py).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APACHE_LIB = REPO / "target" / "apache-rocketmq" / "lib"
OPENDMS_BIN = os.environ.get("OPENDMS_BIN", str(REPO / "target" / "debug" / "opendms"))

LOGBACK = """<configuration>
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
"""


def wait_listening(port, timeout=60.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ApacheRocketmq:
    """Apache RocketMQ 4.9.7: a name server and broker-a, small heaps, its own home."""

    kind = "apache"

    def __init__(self, workdir: Path, ns_port=9876, broker_port=10911, acl=None, flush="ASYNC_FLUSH",
                 heap_mb=512):
        self.home = workdir / "apache-rocketmq"
        self.ns_port, self.broker_port = ns_port, broker_port
        self.acl, self.flush, self.heap_mb = acl, flush, heap_mb
        self.procs = []
        self.started_at = None
        self.ready_at = None

    @property
    def namesrv(self):
        return f"127.0.0.1:{self.ns_port}"

    @property
    def broker(self):
        return f"127.0.0.1:{self.broker_port}"

    def start(self):
        if not APACHE_LIB.is_dir():
            raise RuntimeError(f"{APACHE_LIB} is missing: scripts/setup-test-env fetches it")
        shutil.rmtree(self.home, ignore_errors=True)
        (self.home / "conf").mkdir(parents=True)
        for name in ("logback_namesrv.xml", "logback_broker.xml", "logback_tools.xml"):
            (self.home / "conf" / name).write_text(LOGBACK)
        conf = {
            "brokerClusterName": "DefaultCluster", "brokerName": "broker-a", "brokerId": "0",
            "brokerIP1": "127.0.0.1", "listenPort": str(self.broker_port), "namesrvAddr": self.namesrv,
            "storePathRootDir": str(self.home / "store"), "storePathCommitLog": str(self.home / "store" / "commitlog"),
            "autoCreateTopicEnable": "true", "enablePropertyFilter": "true", "flushDiskType": self.flush,
            "transactionCheckInterval": "1000", "transactionTimeOut": "1000",
            # Smaller mapped files than the 1 GiB default: the disk figures are what is used.
            "mappedFileSizeCommitLog": str(128 * 1024 * 1024),
            # Apache deletes commit-log files, delivered or not, once the disk is over 85% full
            # and refuses every send past 90% (code 14, "the broker's disk is full"); the two
            # system properties below move both, this the ratio past which it deletes at all
            # (95 is its most). A shared CI disk can be that full.
            "diskMaxUsedSpaceRatio": "95",
        }
        if self.acl is not None:
            conf["aclEnable"] = "true"
            (self.home / "conf" / "plain_acl.yml").write_text(self.acl)
        (self.home / "broker.conf").write_text("".join(f"{k}={v}\n" for k, v in conf.items()))
        env = dict(os.environ, ROCKETMQ_HOME=str(self.home))
        cp = f"{APACHE_LIB}/*"
        self.started_at = time.monotonic()
        ns = subprocess.Popen(["java", "-Xms128m", "-Xmx128m", f"-Duser.home={self.home}", "-cp", cp,
                               "org.apache.rocketmq.namesrv.NamesrvStartup"],
                              env=dict(env, JAVA_OPT=""), stdout=open(self.home / "namesrv.log", "wb"),
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(ns)
        wait_listening(self.ns_port, proc=ns)
        heap = f"{self.heap_mb}m"
        broker = subprocess.Popen(["java", f"-Xms{heap}", f"-Xmx{heap}", f"-XX:MaxDirectMemorySize={heap}",
                                   "-Drocketmq.broker.diskSpaceWarningLevelRatio=0.99",
                                   "-Drocketmq.broker.diskSpaceCleanForciblyRatio=0.98",
                                   f"-Duser.home={self.home}", "-cp", cp,
                                   "org.apache.rocketmq.broker.BrokerStartup", "-c", str(self.home / "broker.conf")],
                                  env=env, stdout=open(self.home / "broker.log", "wb"), stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        self.procs.append(broker)
        wait_listening(self.broker_port, proc=broker)
        self._wait_registered()
        self.ready_at = time.monotonic()
        return self

    def _wait_registered(self, timeout=60):
        import rocketmq_wire as wire
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            w = wire.Wire(self.namesrv)
            h, _, _ = w.call(105, {"topic": "TBW102"})
            w.close()
            if h["code"] == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("the Apache broker never registered with its name server")

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        stop_all(self.procs)
        self.procs = []

    def data_bytes(self):
        return _du(self.home / "store")


class OpenDmsRocketmq:
    """`opendms rocketmq` with one broker, configured like the Apache peer."""

    kind = "opendms"

    def __init__(self, workdir: Path, ns_port=19876, broker_port=20911, acl_file=None, flush="async"):
        self.data_dir = workdir / "opendms-rocketmq"
        self.ns_port, self.broker_port = ns_port, broker_port
        self.acl_file, self.flush = acl_file, flush
        self.procs = []
        self.started_at = None
        self.ready_at = None

    @property
    def namesrv(self):
        return f"127.0.0.1:{self.ns_port}"

    @property
    def broker(self):
        return f"127.0.0.1:{self.broker_port}"

    def start(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)
        cmd = [OPENDMS_BIN, "rocketmq", "--listen", self.namesrv, "--broker-listen", self.broker,
               "--data-dir", str(self.data_dir), "--flush", self.flush,
               "--transaction-check-interval-ms", "1000", "--transaction-timeout-ms", "1000"]
        if self.acl_file:
            cmd += ["--acl-file", str(self.acl_file)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(self.data_dir.parent / "opendms-rocketmq.log", "ab"),
                             stdin=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        for line in p.stdout:
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError(f"opendms rocketmq exited with {p.wait()}")
        self.ready_at = time.monotonic()
        return self

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        stop_all(self.procs)
        self.procs = []

    def data_bytes(self):
        return _du(self.data_dir)


def stop_all(procs):
    """SIGTERM to each process (last started first), then wait; kill what does not stop."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _du(path: Path) -> int:
    """Bytes of disk the files under `path` occupy (allocated blocks, as du counts them)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total
