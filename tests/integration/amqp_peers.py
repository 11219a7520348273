"""AMQP brokers for the tests: `opendms rabbitmq` and Debian's `rabbitmq-server` (the
reference the conformance suite compares against), both on loopback ports only.

RabbitMQ runs from /usr/lib/rabbitmq/bin/rabbitmq-server with its own node name, data and
log directories, epmd port and distribution port, every listener bound to 127.0.0.1
(ERL_EPMD_ADDRESS, RABBITMQ_NODE_IP_ADDRESS, inet_dist_use_interface, management.tcp.ip).
"""

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from conftest import BIN, free_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
START_TIMEOUT = 90


def _port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def rabbitmq_installed():
    return os.path.exists(RABBITMQ_SERVER)


class OpenDmsRabbit:
    """One `opendms rabbitmq` process on a data directory; restartable on the same ports."""

    kind = "opendms"

    def __init__(self, workdir: Path, name="rabbitmq", extra_args=()):
        self.name = name
        self.data_dir = workdir / name
        self.log_path = workdir / f"{name}.stderr.log"
        self.port = free_port(("127.0.0.1",))
        self.management_port = free_port(("127.0.0.1",))
        self.extra_args = list(extra_args)
        self.proc = None

    host = "127.0.0.1"

    def command(self):
        return [BIN, "rabbitmq", "--listen", f"127.0.0.1:{self.port}",
                "--management-listen", f"127.0.0.1:{self.management_port}",
                "--data-dir", str(self.data_dir), *self.extra_args]

    def start(self, timeout=30):
        assert self.proc is None
        with open(self.log_path, "ab") as log:
            log.write(f"---- start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                         stdin=subprocess.DEVNULL, text=True)
        lines = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line.strip())
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill9()
                raise RuntimeError(f"opendms rabbitmq printed no `ready`\n{self.log_tail()}")
            if line is None:
                code = self.proc.wait()
                self.proc = None
                raise RuntimeError(f"opendms rabbitmq exited with {code}\n{self.log_tail()}")
            if line == "ready":
                return self

    def stop(self, timeout=30):
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
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
        assert code == 0, f"opendms rabbitmq did not stop cleanly (exit {code})\n{self.log_tail()}"
        return self.start()

    def log_tail(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join([f"---- {self.log_path}"] + text[-lines:])


class DebianRabbit:
    """Debian's RabbitMQ 3.10 node on loopback, with the management and consistent-hash
    plug-ins."""

    kind = "rabbitmq"
    host = "127.0.0.1"

    def __init__(self, workdir: Path, name="rabbitmq-peer",
                 plugins=("rabbitmq_management", "rabbitmq_consistent_hash_exchange")):
        self.plugins = list(plugins)
        self.dir = workdir / name
        self.port = free_port(("127.0.0.1",))
        self.management_port = free_port(("127.0.0.1",))
        self.dist_port = free_port(("127.0.0.1",))
        self.epmd_port = free_port(("127.0.0.1",))
        self.node = f"opendms-peer-{self.port}@localhost"
        self.proc = None
        self.log_path = self.dir / "stdout.log"

    def env(self):
        d = self.dir
        return {
            **os.environ,
            "HOME": str(d),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            "log.console = true\nlog.file = false\n")
        (self.dir / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([RABBITMQ_SERVER], env=self.env(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        management = "rabbitmq_management" in self.plugins
        while not (_port_open(self.port) and (not management or _port_open(self.management_port))):
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rabbitmq-server did not open its ports\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def stop(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        # The node's epmd outlives it; it is ours alone (own port).
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        subprocess.run([epmd, "-kill"], env=self.env(), capture_output=True, timeout=10)

    def log_tail(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join([f"---- {self.log_path}"] + text[-lines:])
