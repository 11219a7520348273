"""A minimal client of RocketMQ's remoting protocol, for the tests that must send what real
clients never send (bad frames, unknown codes, headers written as each client generation
writes them) and read the exact response code and remark.

Frame: length:u32 | serialize type:u8 + header length:u24 | header | body (big-endian).
"""

import json
import socket
import struct

JSON, ROCKETMQ = 0, 1
RESPONSE_FLAG, ONEWAY_FLAG = 1, 2


def json_header(code, opaque, ext=None, flag=0, remark=None, version=395, serialize_type=True, language="JAVA"):
    h = {"code": code, "language": language, "version": version, "opaque": opaque, "flag": flag}
    if remark is not None:
        h["remark"] = remark
    if ext is not None:
        h["extFields"] = ext
    if serialize_type:
        h["serializeTypeCurrentRPC"] = "JSON"
    return json.dumps(h).encode()


def binary_header(code, opaque, ext=None, flag=0, remark=None, version=395):
    """RocketMQ's own header serialization (`RocketMQSerializable`)."""
    out = struct.pack(">hbhii", code, 0, version, opaque, flag)  # language 0 = JAVA
    r = (remark or "").encode()
    out += struct.pack(">i", len(r)) + r
    fields = b""
    for k, v in (ext or {}).items():
        kb, vb = str(k).encode(), str(v).encode()
        fields += struct.pack(">h", len(kb)) + kb + struct.pack(">i", len(vb)) + vb
    out += struct.pack(">i", len(fields)) + fields
    return out


def frame(header, body=b"", kind=JSON):
    return struct.pack(">II", 4 + len(header) + len(body), (kind << 24) | len(header)) + header + body


def parse_binary_header(h):
    code, _lang, version, opaque, flag = struct.unpack(">hbhii", h[:13])
    at = 13
    (rlen,) = struct.unpack(">i", h[at:at + 4])
    at += 4
    remark = h[at:at + rlen].decode() if rlen > 0 else None
    at += max(rlen, 0)
    (flen,) = struct.unpack(">i", h[at:at + 4])
    at += 4
    end = at + flen
    ext = {}
    while at < end:
        (kl,) = struct.unpack(">h", h[at:at + 2])
        at += 2
        k = h[at:at + kl].decode()
        at += kl
        (vl,) = struct.unpack(">i", h[at:at + 4])
        at += 4
        ext[k] = h[at:at + vl].decode()
        at += vl
    return {"code": code, "version": version, "opaque": opaque, "flag": flag, "remark": remark, "extFields": ext}


class Wire:
    """One connection; `call` sends a request and returns (header dict, body bytes, kind)."""

    def __init__(self, addr, timeout=10.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.opaque = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the server")
            buf += chunk
        return buf

    def read(self):
        (length,) = struct.unpack(">I", self._read_exact(4))
        rest = self._read_exact(length)
        (meta,) = struct.unpack(">I", rest[:4])
        kind, hlen = meta >> 24, meta & 0xFFFFFF
        header = rest[4:4 + hlen]
        body = rest[4 + hlen:]
        h = json.loads(header) if kind == JSON else parse_binary_header(header)
        return h, body, kind

    def read_response(self, opaque):
        while True:
            h, body, kind = self.read()
            if h.get("flag", 0) & RESPONSE_FLAG and h.get("opaque") == opaque:
                return h, body, kind

    def call(self, code, ext=None, body=b"", kind=JSON, **kw):
        self.opaque += 1
        header = json_header(code, self.opaque, ext, **kw) if kind == JSON else binary_header(code, self.opaque, ext)
        self.send_raw(frame(header, body, kind))
        return self.read_response(self.opaque)

    def is_closed(self, timeout=5.0):
        """True once the server has closed the connection (reads EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def message_body(body, props):
    """A SEND_BATCH_MESSAGE body entry (`MessageDecoder.encodeMessage`)."""
    p = "".join(f"{k}\x01{v}\x02" for k, v in props.items()).encode()
    size = 4 + 4 + 4 + 4 + 4 + len(body) + 2 + len(p)
    return struct.pack(">iiiii", size, 0, 0, 0, len(body)) + body + struct.pack(">h", len(p)) + p


def properties(d):
    return "".join(f"{k}\x01{v}\x02" for k, v in d.items())


def decode_messages(body):
    """Stored messages as a pull or query response carries them: (topic, queue offset, body,
    properties) each."""
    out = []
    at = 0
    while at < len(body):
        (size,) = struct.unpack(">i", body[at:at + 4])
        m = body[at:at + size]
        queue_offset, physical = struct.unpack(">qq", m[20:36])
        (sys_flag,) = struct.unpack(">i", m[36:40])
        pos = 40 + 8 + (20 if sys_flag & 0x10 else 8) + 8 + (20 if sys_flag & 0x20 else 8) + 4 + 8
        (blen,) = struct.unpack(">i", m[pos:pos + 4])
        payload = m[pos + 4:pos + 4 + blen]
        pos += 4 + blen
        tlen = m[pos]
        topic = m[pos + 1:pos + 1 + tlen].decode()
        pos += 1 + tlen
        (plen,) = struct.unpack(">h", m[pos:pos + 2])
        props = dict(kv.split("\x01", 1) for kv in m[pos + 2:pos + 2 + plen].decode().split("\x02") if "\x01" in kv)
        out.append({"topic": topic, "queueOffset": queue_offset, "physicalOffset": physical, "body": payload,
                    "properties": props})
        at += size
    return out
