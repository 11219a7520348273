"""Malformed frames get an error answer or the close of that one connection; the broker
and every other connection keep working."""

import socket
import struct

import pytest
from confluent_kafka import Producer


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def closed_by_broker(s):
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def api_versions_ok(addr):
    s = connect(addr)
    # ApiVersions v0, header v1: key, version, correlation id, null client id
    s.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    body = recv_exact(s, size)
    s.close()
    correlation, error = struct.unpack(">ih", body[:6])
    return correlation == 7 and error == 0


@pytest.fixture
def small_frames(broker_factory):
    return broker_factory(brokers=1, extra_args=["--max-frame-bytes", "4096"])


@pytest.mark.parametrize("frame", [
    pytest.param(struct.pack(">i", 1_000_000) + b"\0" * 64, id="oversized"),
    pytest.param(struct.pack(">i", -7), id="negative-size"),
    pytest.param(struct.pack(">ihhi", 8, 12345, 0, 1), id="unknown-api-key"),
    pytest.param(struct.pack(">ihhi", 8, 0, 99, 1), id="unsupported-version"),
    pytest.param(struct.pack(">ihhih", 14, 0, 7, 1, -1) + b"\xff\xff\x00\x01", id="truncated-produce"),
    pytest.param(struct.pack(">ihhih", 40, 3, 9, 1, -1) + b"\x00\x00\x7f\xff\xff\xff" + b"\x01" * 28,
                 id="metadata-huge-array"),
    pytest.param(struct.pack(">i", 3) + b"abc", id="shorter-than-header"),
])
def test_malformed_frame_closes_only_its_connection(small_frames, frame):
    addr = small_frames.addresses[0]
    keeper = connect(addr)
    bad = connect(addr)
    bad.sendall(frame)
    assert closed_by_broker(bad)
    assert api_versions_ok(addr)
    # the connection opened before is untouched
    keeper.sendall(struct.pack(">ihhih", 10, 18, 0, 9, -1))
    size = struct.unpack(">i", recv_exact(keeper, 4))[0]
    assert struct.unpack(">i", recv_exact(keeper, size)[:4])[0] == 9


def test_api_versions_unknown_version_kip511(small_frames):
    s = connect(small_frames.addresses[0])
    # ApiVersions v127 with a header the broker cannot know the shape of
    s.sendall(struct.pack(">ihhi", 8, 18, 127, 42))
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    body = recv_exact(s, size)
    correlation, error, count = struct.unpack(">ihi", body[:10])
    assert (correlation, error) == (42, 35)
    keys = {struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])[0] for i in range(count)}
    assert {0, 1, 3, 18} <= keys


def test_broker_serves_clients_after_garbage(small_frames):
    addr = small_frames.addresses[0]
    for _ in range(20):
        s = connect(addr)
        s.sendall(struct.pack(">i", 12) + bytes(range(12)))
        closed_by_broker(s)
    p = Producer({"bootstrap.servers": addr})
    errs = []
    p.produce("after-garbage", value=b"ok", on_delivery=lambda e, m: errs.append(e))
    p.flush(20)
    assert errs == [None]
