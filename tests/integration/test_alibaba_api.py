"""The Alibaba Message Queue for Kafka API (alikafka 2019-09-16) of `opendms serve`, driven
by the official SDKs: `alibabacloud-alikafka20190916` with its default ACS3 signature and
with `signature_algorithm='v2'` (RPC HMAC-SHA1), and the legacy `aliyun-python-sdk-alikafka`.
Instances are shared with the Huawei API."""

import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import quote

import pytest
import requests
from alibabacloud_alikafka20190916 import models as m
from alibabacloud_alikafka20190916.client import Client
from alibabacloud_tea_openapi.models import Config
from confluent_kafka import Consumer, Producer, TopicPartition
from huaweicloudsdkkafka.v2 import ShowInstanceRequest

REGION = "cn-hangzhou"


def ali_client(server, algorithm=None):
    cfg = Config(access_key_id=server.ak, access_key_secret=server.sk, region_id=REGION,
                 endpoint=server.url.split("//")[1], protocol="http")
    if algorithm:
        cfg.signature_algorithm = algorithm
    return Client(cfg)


def rpc_call(server, action, params, version="2019-09-16", nonce=None, timestamp=None, tamper=False, fmt="JSON"):
    """A raw RPC request signed as clients.md §2b describes."""
    q = {"Action": action, "Version": version, "Format": fmt, "AccessKeyId": server.ak,
         "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
         "SignatureNonce": nonce or uuid.uuid4().hex,
         "Timestamp": timestamp or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "RegionId": REGION, **params}
    pe = lambda s: quote(str(s), safe="~")  # noqa: E731
    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(q.items()))
    sts = "POST&%2F&" + pe(canonical)
    sig = base64.b64encode(hmac.new((server.sk + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()
    q["Signature"] = sig + ("x" if tamper else "")
    return requests.post(server.url + "/?" + "&".join(f"{pe(k)}={pe(v)}" for k, v in q.items()), timeout=30)


def deployed(c, instance_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vo = c.get_instance_list(m.GetInstanceListRequest(region_id=REGION, instance_id=[instance_id])).body.instance_list.instance_vo[0]
        if vo.service_status == 5:
            return vo
        time.sleep(0.1)
    raise AssertionError(f"instance {instance_id} never reached ServiceStatus 5")


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v2"])
def test_order_deploy_topics_groups_release(server, algorithm):
    c = ali_client(server, algorithm)
    order = c.create_post_pay_order(m.CreatePostPayOrderRequest(
        region_id=REGION, deploy_type=5, disk_size=500, disk_type="1", io_max=20, spec_type="normal",
        tag=[m.CreatePostPayOrderRequestTag(key="team", value="payments")])).body
    assert order.success is True and order.code == 200 and len(order.order_id) == 15
    vo = c.get_instance_list(m.GetInstanceListRequest(region_id=REGION, order_id=order.order_id)).body.instance_list.instance_vo
    assert len(vo) == 1 and vo[0].service_status == 0 and vo[0].end_point == ""
    iid = vo[0].instance_id
    assert [(t.key, t.value) for t in vo[0].tags.tag_vo] == [("team", "payments")]

    c.start_instance(m.StartInstanceRequest(region_id=REGION, instance_id=iid, deploy_module="vpc", vpc_id="vpc-1",
                                            v_switch_id="vsw-1", zone_id="zonea", name="ali-instance"))
    vo = deployed(c, iid)
    assert vo.name == "ali-instance" and vo.vpc_id == "vpc-1" and len(vo.end_point.split(",")) == 3
    # The same instance through the Huawei API.
    hw = server.client().show_instance(ShowInstanceRequest(instance_id=iid))
    assert hw.status == "RUNNING" and hw.name == "ali-instance" and hw.storage_space == 500
    c.modify_instance_name(m.ModifyInstanceNameRequest(region_id=REGION, instance_id=iid, instance_name="ali-renamed"))
    assert server.client().show_instance(ShowInstanceRequest(instance_id=iid)).name == "ali-renamed"

    c.create_topic(m.CreateTopicRequest(region_id=REGION, instance_id=iid, topic="orders", remark="order events", partition_num="6"))
    bs = vo.end_point
    p = Producer({"bootstrap.servers": bs})
    for i in range(60):
        p.produce("orders", f"v{i}".encode(), partition=i % 6)
    assert p.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "billing"})
    consumer.commit(offsets=[TopicPartition("orders", 0, 4)], asynchronous=False)
    consumer.close()

    topics = c.get_topic_list(m.GetTopicListRequest(region_id=REGION, instance_id=iid)).body
    assert [(t.topic, t.remark, t.partition_num) for t in topics.topic_list.topic_vo] == [("orders", "order events", 6)]
    c.modify_topic_remark(m.ModifyTopicRemarkRequest(region_id=REGION, instance_id=iid, topic="orders", remark="renamed"))
    status = c.get_topic_status(m.GetTopicStatusRequest(region_id=REGION, instance_id=iid, topic="orders")).body.topic_status
    assert status.total_count == 60
    assert sorted((o.partition, o.min_offset, o.max_offset) for o in status.offset_table.offset_table) == [(i, 0, 10) for i in range(6)]
    c.modify_partition_num(m.ModifyPartitionNumRequest(region_id=REGION, instance_id=iid, topic="orders", add_partition_num=6))
    topics = c.get_topic_list(m.GetTopicListRequest(region_id=REGION, instance_id=iid)).body.topic_list.topic_vo
    assert [(t.topic, t.remark, t.partition_num) for t in topics] == [("orders", "renamed", 12)]

    progress = c.get_consumer_progress(m.GetConsumerProgressRequest(region_id=REGION, instance_id=iid, consumer_id="billing")).body.consumer_progress
    assert progress.total_diff == 6
    [topic] = progress.topic_list.topic_list
    assert (topic.topic, topic.total_diff) == ("orders", 6)
    assert [(o.partition, o.consumer_offset, o.broker_offset) for o in topic.offset_list.offset_list] == [(0, 4, 10)]

    c.create_consumer_group(m.CreateConsumerGroupRequest(region_id=REGION, instance_id=iid, consumer_id="declared", remark="r"))
    groups = c.get_consumer_list(m.GetConsumerListRequest(region_id=REGION, instance_id=iid)).body.consumer_list.consumer_vo
    assert sorted((g.consumer_id, g.automatically_created_group) for g in groups) == [("billing", True), ("declared", False)]
    c.delete_consumer_group(m.DeleteConsumerGroupRequest(region_id=REGION, instance_id=iid, consumer_id="declared"))
    c.delete_consumer_group(m.DeleteConsumerGroupRequest(region_id=REGION, instance_id=iid, consumer_id="billing"))
    assert c.get_consumer_list(m.GetConsumerListRequest(region_id=REGION, instance_id=iid)).body.consumer_list.consumer_vo == []

    c.delete_topic(m.DeleteTopicRequest(region_id=REGION, instance_id=iid, topic="orders"))
    assert c.get_topic_list(m.GetTopicListRequest(region_id=REGION, instance_id=iid)).body.topic_list.topic_vo == []
    ids = c.get_all_instance_id_list(m.GetAllInstanceIdListRequest(region_id=REGION)).body.instance_ids
    assert ids == {REGION: [iid]}

    c.release_instance(m.ReleaseInstanceRequest(region_id=REGION, instance_id=iid, force_delete_instance=True))
    server.wait_gone(iid)
    with pytest.raises(Exception) as e:
        c.get_topic_list(m.GetTopicListRequest(region_id=REGION, instance_id=iid))
    assert getattr(e.value, "code", None) == "InvalidInstanceId.NotFound"


def test_legacy_sdk_and_xml(server):
    from aliyunsdkalikafka.request.v20190916 import CreatePostPayOrderRequest, DeleteInstanceRequest, GetInstanceListRequest
    from aliyunsdkcore.client import AcsClient

    c = AcsClient(server.ak, server.sk, REGION)
    endpoint = server.url.split("//")[1]

    def call(req):
        req.set_endpoint(endpoint)
        req.set_protocol_type("http")
        return json.loads(c.do_action_with_exception(req))

    r = CreatePostPayOrderRequest.CreatePostPayOrderRequest()
    r.set_DeployType(5); r.set_DiskSize(500); r.set_DiskType("0"); r.set_IoMax(20)  # noqa: E702
    order = call(r)
    assert order["Success"] is True and order["Code"] == 200
    listed = call(GetInstanceListRequest.GetInstanceListRequest())["InstanceList"]["InstanceVO"]
    assert [(v["ServiceStatus"], v["DiskType"]) for v in listed] == [(0, 0)]
    iid = listed[0]["InstanceId"]

    xml = rpc_call(server, "GetInstanceList", {}, fmt="XML")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    assert xml.text.startswith('<?xml version="1.0" encoding="UTF-8"?><GetInstanceListResponse>')
    assert "<RequestId>" in xml.text and "<Success>true</Success>" in xml.text
    assert "<InstanceList><InstanceVO><CreateTime>" in xml.text and f"<InstanceId>{iid}</InstanceId>" in xml.text

    d = DeleteInstanceRequest.DeleteInstanceRequest()
    d.set_InstanceId(iid)
    assert call(d)["Success"] is True
    server.wait_gone(iid)


def test_errors_signatures_and_replay(server):
    ok = rpc_call(server, "GetInstanceList", {})
    assert ok.status_code == 200 and ok.json()["Success"] is True
    r = rpc_call(server, "GetInstanceList", {}, tamper=True)
    assert (r.status_code, r.json()["Code"]) == (400, "SignatureDoesNotMatch")
    nonce = uuid.uuid4().hex
    assert rpc_call(server, "GetInstanceList", {}, nonce=nonce).status_code == 200
    r = rpc_call(server, "GetInstanceList", {}, nonce=nonce)
    assert (r.status_code, r.json()["Code"]) == (400, "SignatureNonceUsed")
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = rpc_call(server, "GetInstanceList", {}, timestamp=old)
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidTimeStamp.Expired")
    r = rpc_call(server, "GetInstanceList", {}, version="2018-10-15")
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidVersion")
    r = rpc_call(server, "NoSuchAction", {})
    assert (r.status_code, r.json()["Code"]) == (404, "InvalidAction.NotFound")
    r = rpc_call(server, "CreatePostPayOrder", {"DeployType": 5, "DiskType": "1", "IoMax": 20})
    assert (r.status_code, r.json()["Code"]) == (400, "MissingParameter") and "DiskSize" in r.json()["Message"]
    r = rpc_call(server, "GetTopicList", {"InstanceId": "8d2b1f7c-1f0e-4c2a-9d7a-0a1b2c3d4e5f"})
    assert (r.status_code, r.json()["Code"]) == (404, "InvalidInstanceId.NotFound")
    r = rpc_call(server, "CreateSaslUser", {"InstanceId": "x", "Username": "u", "Password": "p"})
    assert (r.status_code, r.json()["Code"]) == (501, "UnsupportedOperation")
    # Spaces, '+' and '*' in parameters are signed and decoded the same way by both schemes.
    for algorithm in (None, "v2"):
        body = ali_client(server, algorithm).get_instance_list(
            m.GetInstanceListRequest(region_id=REGION, instance_id=["a b+c*~"])).body
        assert body.success is True and body.instance_list.instance_vo == []
    # Nothing was created by any of the refused calls.
    assert rpc_call(server, "GetInstanceList", {}).json()["InstanceList"]["InstanceVO"] == []
