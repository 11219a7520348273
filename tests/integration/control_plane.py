"""Starts `opendms serve` for the tests and talks to it: the official Huawei SDK client, raw
signed requests (SDK-HMAC-SHA256, shared/spec/clients.md §1b) for paths the SDK lacks, and
waiting for statuses.
"""

import datetime
import hashlib
import hmac
import json
import os
import queue
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkafka.v2 import KafkaClient, ShowInstanceRequest

START_TIMEOUT = 30


def _pump(stream, lines):
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


class Server:
    """One `opendms serve` process on its own data directory, HTTP port and broker address
    range; stop() and start() again keep the data."""

    def __init__(self, binary, workdir: Path, http_port: int, broker_port: int):
        self.binary = binary
        self.data_dir = workdir / "opendms-data"
        self.log_path = workdir / "serve.stderr.log"
        self.url = f"http://127.0.0.1:{http_port}"
        # A /24-sized range of loopback addresses of its own, so parallel or leftover
        # servers never collide.
        self.pool = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.1"
        self.ak = "TESTAK" + "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(14))
        self.sk = "".join(random.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(40))
        self.project_id = "%032x" % random.getrandbits(128)
        self.domain, self.user, self.password = "testdomain", "tester", "Test-Passw0rd"
        self.env = {
            **os.environ,
            "OPENDMS_LISTEN": f"127.0.0.1:{http_port}",
            "OPENDMS_DATA_DIR": str(self.data_dir),
            "OPENDMS_ACCESS_KEY": self.ak,
            "OPENDMS_SECRET_KEY": self.sk,
            "OPENDMS_PROJECT_ID": self.project_id,
            "OPENDMS_DOMAIN": self.domain,
            "OPENDMS_USER": self.user,
            "OPENDMS_PASSWORD": self.password,
            "OPENDMS_BROKER_IP_POOL": self.pool,
            "OPENDMS_BROKER_PORT": str(broker_port),
            # The suite polls faster than Alibaba's 3 requests per second; the throttling
            # test sets the documented rates back.
            "OPENDMS_ALIBABA_QPS": "0",
        }
        self.proc = None

    def start(self):
        assert self.proc is None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=subprocess.PIPE,
                                         stderr=log, stdin=subprocess.DEVNULL, text=True)
        lines = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        # What this start printed before `ready`.
        self.stdout_lines = []
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("opendms serve exited before ready:\n" + self.log_tail())
            if line == "ready":
                return self
            self.stdout_lines.append(line)

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, lines=80):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # ---- clients

    def client(self, project_id=None, ak=None, sk=None) -> KafkaClient:
        creds = BasicCredentials(ak or self.ak, sk or self.sk, project_id or self.project_id)
        return KafkaClient.new_builder().with_credentials(creds).with_endpoint(self.url).build()

    def signed(self, method, path, body=None, query=None, sdk_date=None, tamper=None, token=None):
        """A request signed as the Python SDK signs (or with an X-Auth-Token)."""
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        q = "&".join(f"{quote(str(k), safe='~')}={quote(str(v), safe='~')}" for k, v in sorted((query or {}).items()))
        headers = {"Content-Type": "application/json", "Host": self.url.split("//")[1],
                   "X-Project-Id": self.project_id}
        if token:
            headers = {"Content-Type": "application/json", "X-Auth-Token": token}
        else:
            headers["X-Sdk-Date"] = sdk_date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            headers["Authorization"] = sign(method, path, q, headers, data, self.ak, self.sk)
        if tamper:
            data = tamper(data)
        return requests.request(method, self.url + path + ("?" + q if q else ""), data=data, headers=headers, timeout=30)

    def token(self, project_name=None):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": self.user, "password": self.password, "domain": {"name": self.domain}}}},
            "scope": {"project": {"name": project_name} if project_name else {"id": self.project_id}}}}
        return requests.post(self.url + "/v3/auth/tokens", json=body, timeout=30)

    def wait_status(self, instance_id, want, timeout=30, client=None):
        c = client or self.client()
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            s = c.show_instance(ShowInstanceRequest(instance_id=instance_id))
            if not seen or seen[-1] != s.status:
                seen.append(s.status)
            if s.status == want:
                return s, seen
            time.sleep(0.1)
        raise AssertionError(f"instance {instance_id} never became {want}; statuses seen: {seen}")

    def wait_gone(self, instance_id, timeout=30):
        c = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c.show_instance(ShowInstanceRequest(instance_id=instance_id))
            except ClientRequestException as e:
                assert e.status_code == 404 and e.error_code == "DMS.00404022", e
                return
            time.sleep(0.1)
        raise AssertionError(f"instance {instance_id} still exists")


def bootstrap(show) -> str:
    return ",".join(f"{ip}:{show.port}" for ip in show.connect_address.split(","))


def sign(method, path, query, headers, body, ak, sk):
    """SDK-HMAC-SHA256 as huaweicloudsdkcore's Signer computes it (clients.md §1b)."""
    uri = "/".join(quote(seg, safe="~") for seg in path.split("/"))
    if not uri.endswith("/"):
        uri += "/"
    signed = sorted(k.lower() for k in headers if "_" not in k)
    lower = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{k}:{lower[k].strip()}\n" for k in signed)
    payload = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method, uri, query, canonical_headers, ";".join(signed), payload])
    sts = "SDK-HMAC-SHA256\n%s\n%s" % (lower["x-sdk-date"], hashlib.sha256(canonical.encode()).hexdigest())
    sig = hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(signed)}, Signature={sig}"
