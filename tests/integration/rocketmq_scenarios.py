"""RocketMQ behaviours observed the same way against Apache RocketMQ 4.9.7 and OpenDMS: each
scenario takes a peer (name server and broker addresses) and returns what it saw, with
everything that legitimately differs between two brokers (addresses, physical offsets,
timestamps, ids) left out. test_rocketmq_conformance.py requires equal outcomes.
"""

import json
import subprocess
import time
import uuid
from pathlib import Path

import rocketmq_wire as wire

REPO = Path(__file__).resolve().parents[2]
JAVA_JAR = REPO / "target" / "rocketmq-java-client" / "rocketmq-java-workload.jar"

SEND_V2, PULL, QUERY_MESSAGE, QUERY_CONSUMER_OFFSET = 310, 11, 12, 14
UPDATE_TOPIC, GET_MAX_OFFSET, VIEW_BY_ID, SEND_BACK = 17, 30, 33, 36
CONSUMER_LIST, ROUTE = 38, 105


def send_header(topic, queue_id="0", props=None, group="conf-pg"):
    return {"a": group, "b": topic, "c": "TBW102", "d": "4", "e": queue_id, "f": "0",
            "g": str(int(time.time() * 1000)), "h": "0", "i": wire.properties(props or {}), "j": "0", "k": "false"}


def outcome(h, *fields):
    out = {"code": h["code"], "remark": h.get("remark")}
    for f in fields:
        out[f] = h.get("extFields", {}).get(f)
    return out


def unique(name):
    return f"{name}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- name server


def route_of_unknown_topic(peer):
    w = wire.Wire(peer.namesrv)
    h, _, _ = w.call(ROUTE, {"topic": "no-such-topic"})
    return outcome(h)


def unknown_request_code(peer):
    b = wire.Wire(peer.broker)
    hb, _, _ = b.call(9999)
    # The name server leaves an unknown code unanswered and keeps the connection.
    w = wire.Wire(peer.namesrv, timeout=3)
    try:
        h, _, _ = w.call(9999)
        namesrv = outcome(h)
    except TimeoutError:
        w.sock.settimeout(10)
        h, _, _ = w.call(ROUTE, {"topic": "TBW102"})
        namesrv = {"answered": False, "connection still serves": h["code"] == 0}
    return {"namesrv": namesrv, "broker": outcome(hb)}


def route_of_auto_create_topic(peer):
    w = wire.Wire(peer.namesrv)
    h, body, _ = w.call(ROUTE, {"topic": "TBW102"})
    text = body.decode()
    # fastjson writes the broker-id keys unquoted: {0:"127.0.0.1:10911"}.
    unquoted = '"brokerAddrs":{0:"127.0.0.1:' in text
    route = json.loads(text.replace('"brokerAddrs":{0:', '"brokerAddrs":{"0":'))
    return {"code": h["code"], "unquoted broker ids": unquoted, "queues": [(q["brokerName"], q["readQueueNums"], q["writeQueueNums"], q["perm"])
                                          for q in route["queueDatas"]]}


# ---------------------------------------------------------------- sends


def send_refusals(peer):
    w = wire.Wire(peer.broker)
    out = {}
    h, _, _ = w.call(SEND_V2, send_header("SCHEDULE_TOPIC_XXXX"), body=b"x")
    out["system topic"] = outcome(h)
    h, _, _ = w.call(SEND_V2, send_header("bad.topic"), body=b"x")
    out["illegal name"] = outcome(h)
    h, _, _ = w.call(SEND_V2, send_header("x" * 128), body=b"x")
    out["too long"] = outcome(h)
    topic = unique("conf-q")
    w.call(SEND_V2, send_header(topic), body=b"x")
    h, _, _ = w.call(SEND_V2, send_header(topic, queue_id="9"), body=b"x")
    # The remark ends with the producer's address, which differs.
    out["queue id"] = {"code": h["code"], "remark": h["remark"].split(" Producer:")[0].replace(topic, "T")}
    return out


def send_and_offsets(peer):
    w = wire.Wire(peer.broker)
    topic = unique("conf-o")
    h, _, _ = w.call(UPDATE_TOPIC, {"topic": topic, "readQueueNums": "2", "writeQueueNums": "2", "perm": "6",
                                    "topicFilterType": "SINGLE_TAG"})
    created = h["code"]
    sends = []
    for i, kind in enumerate((wire.JSON, wire.ROCKETMQ, wire.JSON)):
        h, _, k = w.call(SEND_V2, send_header(topic, "1", {"TAGS": "t", "KEYS": f"key{i}"}), body=b"m%d" % i, kind=kind)
        sends.append((h["code"], k, h["extFields"].get("queueId"), h["extFields"].get("queueOffset")))
    # Apache builds its consume queue after the send is answered (ReputMessageService), so its
    # max offset may trail the acknowledged sends by a few milliseconds: compare settled states.
    stored = sum(1 for code, *_ in sends if code == 0)
    deadline = time.monotonic() + 5
    while True:
        h, _, _ = w.call(GET_MAX_OFFSET, {"topic": topic, "queueId": "1"})
        max1 = h["extFields"]["offset"]
        if int(max1) >= stored or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    h, _, _ = w.call(GET_MAX_OFFSET, {"topic": topic, "queueId": "0"})
    max0 = h["extFields"]["offset"]
    h, _, _ = w.call(QUERY_CONSUMER_OFFSET, {"consumerGroup": unique("g"), "topic": topic, "queueId": "1"})
    return {"created": created, "sends": sends, "max": [max0, max1], "new group offset": outcome(h, "offset")}


# ---------------------------------------------------------------- pulls


def pull_header(group, topic, queue_id, offset, sys_flag=0x4, subscription="*", expression="TAG"):
    return {"consumerGroup": group, "topic": topic, "queueId": str(queue_id), "queueOffset": str(offset),
            "maxMsgNums": "32", "sysFlag": str(sys_flag), "commitOffset": "0", "suspendTimeoutMillis": "1000",
            "subscription": subscription, "subVersion": "0", "expressionType": expression}


def pull_statuses(peer):
    w = wire.Wire(peer.broker)
    topic = unique("conf-p")
    w.call(UPDATE_TOPIC, {"topic": topic, "readQueueNums": "1", "writeQueueNums": "1", "perm": "6",
                          "topicFilterType": "SINGLE_TAG"})
    for i in range(3):
        tag = "keep" if i != 1 else "drop"
        w.call(SEND_V2, send_header(topic, "0", {"TAGS": tag, "KEYS": f"k{i}", "a": str(i)}), body=b"p%d" % i)
    g = unique("pg")
    out = {}
    h, body, _ = w.call(PULL, pull_header(g, topic, 0, 0))
    out["found"] = dict(outcome(h, "nextBeginOffset", "minOffset", "maxOffset"),
                        bodies=[m["body"].decode() for m in wire.decode_messages(body)])
    h, body, _ = w.call(PULL, pull_header(g, topic, 0, 0, subscription="keep"))
    out["tag filter"] = dict(outcome(h, "nextBeginOffset"), bodies=[m["body"].decode() for m in wire.decode_messages(body)])
    h, _, _ = w.call(PULL, pull_header(g, topic, 0, 1, subscription="nothing-has-this"))
    out["no match"] = outcome(h, "nextBeginOffset")
    h, _, _ = w.call(PULL, pull_header(g, topic, 0, 3, sys_flag=0x4 | 0x2))
    out["at the end, suspended"] = outcome(h, "nextBeginOffset")
    h, _, _ = w.call(PULL, pull_header(g, topic, 0, 10))
    out["past the end"] = outcome(h, "nextBeginOffset")
    h, body, _ = w.call(PULL, pull_header(g, topic, 0, 0, subscription="a >= 1", expression="SQL92"))
    out["sql92"] = dict(outcome(h), bodies=[m["body"].decode() for m in wire.decode_messages(body)])
    h, _, _ = w.call(PULL, pull_header(g, topic, 0, 0, subscription="a >", expression="SQL92"))
    out["sql92 parse error"] = outcome(h)
    h, _, _ = w.call(PULL, pull_header(g, "no-such-topic", 0, 0))
    out["unknown topic"] = {"code": h["code"], "remark": h["remark"].split("\n")[0]}
    h, _, _ = w.call(PULL, pull_header(g, topic, 5, 0))
    out["bad queue"] = {"code": h["code"], "remark": h["remark"].split(" consumer:")[0].replace(topic, "T")}
    new_group = pull_header(unique("nosub"), topic, 0, 0, sys_flag=0)
    h, _, _ = w.call(PULL, new_group)
    out["no subscription"] = {"code": h["code"], "remark": h["remark"].split("\n")[0]}
    return out


# ---------------------------------------------------------------- lookups and admin


def lookup_refusals(peer):
    w = wire.Wire(peer.broker)
    out = {}
    h, _, _ = w.call(VIEW_BY_ID, {"offset": str(1 << 60)})
    out["view bogus offset"] = {"code": h["code"], "remark": h["remark"].split(",")[0]}
    h, _, _ = w.call(QUERY_MESSAGE, {"topic": "TBW102", "key": "nothing", "maxNum": "32", "beginTimestamp": "0",
                                     "endTimestamp": str(int(time.time() * 1000))})
    out["query unknown key"] = outcome(h)
    h, _, _ = w.call(SEND_BACK, {"offset": str(1 << 60), "group": unique("sb"), "delayLevel": "0",
                                 "originMsgId": "x", "originTopic": "t", "unitMode": "false", "maxReconsumeTimes": "3"})
    out["send back bogus offset"] = {"code": h["code"], "remark": h["remark"].split(",")[0]}
    g = unique("lonely")
    h, _, _ = w.call(CONSUMER_LIST, {"consumerGroup": g})
    out["consumer list of an idle group"] = {"code": h["code"], "remark": h["remark"].replace(g, "G")}
    h, _, _ = w.call(UPDATE_TOPIC, {"topic": "TBW102", "readQueueNums": "1", "writeQueueNums": "1", "perm": "6",
                                    "topicFilterType": "SINGLE_TAG"})
    out["create a system topic"] = outcome(h)
    h, _, _ = w.call(UPDATE_TOPIC, {"topic": "tt", "readQueueNums": "1", "writeQueueNums": "1", "perm": "6",
                                    "topicFilterType": "BOGUS"})
    out["bad filter type"] = {"code": h["code"], "remark": h["remark"].split(", org.apache")[0]}
    # Apache answers a missing field with the text of whichever exception it hits (here a
    # NullPointerException); the code is what clients act on.
    h, _, _ = w.call(PULL, {"consumerGroup": "g", "topic": "TBW102"})
    out["missing header field"] = {"code": h["code"]}
    return out


# ---------------------------------------------------------------- the Java client


def java(*args, timeout=240):
    r = subprocess.run(["java", "-jar", str(JAVA_JAR), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return {"exit": r.returncode, "stderr": r.stderr[-2000:]}
    return json.loads(r.stdout)


def java_retry_and_dlq(peer):
    return java("retry-dlq", peer.namesrv, unique("conf-retry"))


def java_transactions(peer):
    return java("transaction", peer.namesrv, unique("conf-tx"))


def java_delay_level(peer):
    got = java("delay", peer.namesrv, unique("conf-delay"))
    return {"status": got.get("status"), "not before its level": got.get("delayMs", -1) >= 5000}


def java_queries(peer):
    got = java("query", peer.namesrv, unique("conf-query"))
    return {"byKey": got.get("byKey"), "byKeyBody": got.get("byKeyBody"),
            "byId found": str(got.get("byIdKeys", "")).startswith("qk-")}


def java_too_large(peer):
    return java("errors", peer.namesrv, unique("conf-big"))


def java_sql_and_trace(peer):
    return java("sql-trace", peer.namesrv, unique("conf-sql"))


SCENARIOS = {f.__name__: f for f in (
    route_of_unknown_topic, unknown_request_code, route_of_auto_create_topic, send_refusals, send_and_offsets,
    pull_statuses, lookup_refusals, java_retry_and_dlq, java_transactions, java_delay_level, java_queries,
    java_too_large, java_sql_and_trace,
)}

ACL_YML = """globalWhiteRemoteAddresses: []
accounts:
- accessKey: RocketMQ
  secretKey: "12345678"
  whiteRemoteAddress: ""
  admin: false
  defaultTopicPerm: DENY
  defaultGroupPerm: SUB
  topicPerms:
  - acl-open=PUB|SUB
- accessKey: rocketmq2
  secretKey: "12345678"
  whiteRemoteAddress: ""
  admin: true
"""

ACL_JSON = {"globalWhiteRemoteAddresses": [], "accounts": [
    {"accessKey": "RocketMQ", "secretKey": "12345678", "whiteRemoteAddress": "", "admin": False,
     "defaultTopicPerm": "DENY", "defaultGroupPerm": "SUB", "topicPerms": ["acl-open=PUB|SUB"]},
    {"accessKey": "rocketmq2", "secretKey": "12345678", "whiteRemoteAddress": "", "admin": True}]}


def acl_refusals(peer):
    got = java("acl", peer.namesrv, "acl-open", "acl-closed", "RocketMQ", "12345678")
    w = wire.Wire(peer.broker)
    h, _, _ = w.call(GET_MAX_OFFSET, {"topic": "acl-open", "queueId": "0"})
    first_line = lambda r: (r or "").split(", org.apache")[0]
    return {"sent": got.get("sent"), "consumed": got.get("consumed"),
            "no permission": {"code": got["noPermission"]["code"], "remark": first_line(got["noPermission"]["remark"])},
            "wrong secret": {"code": got["wrongSecret"]["code"], "remark": first_line(got["wrongSecret"]["remark"])},
            "unsigned": {"code": h["code"], "remark": first_line(h["remark"])}}
