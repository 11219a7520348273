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
    from confluent_kafka.admin import AdminClient
    kafka_admin = AdminClient({"bootstrap.servers": bs})
    listed = kafka_admin.list_consumer_groups().result(timeout=15)
    assert {"billing", "declared"} <= {g.group_id for g in listed.valid}, "the broker knows the declared group"
    c.delete_consumer_group(m.DeleteConsumerGroupRequest(region_id=REGION, instance_id=iid, consumer_id="declared"))
    c.delete_consumer_group(m.DeleteConsumerGroupRequest(region_id=REGION, instance_id=iid, consumer_id="billing"))
    assert c.get_consumer_list(m.GetConsumerListRequest(region_id=REGION, instance_id=iid)).body.consumer_list.consumer_vo == []

    c.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="INSTANCE", resource_id=[iid],
                                          tag=[m.TagResourcesRequestTag(key="env", value="prod")]))
    tags = c.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="INSTANCE",
                                                          resource_id=[iid])).body.tag_resources.tag_resource
    assert sorted((t.tag_key, t.tag_value) for t in tags) == [("env", "prod"), ("team", "payments")]
    c.untag_resources(m.UntagResourcesRequest(region_id=REGION, resource_type="INSTANCE", resource_id=[iid],
                                              tag_key=["team"]))
    tags = c.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="INSTANCE",
                                                          resource_id=[iid])).body.tag_resources.tag_resource
    assert [(t.tag_key, t.tag_value) for t in tags] == [("env", "prod")]

    c.upgrade_post_pay_order(m.UpgradePostPayOrderRequest(region_id=REGION, instance_id=iid, disk_size=800, io_max=40,
                                                          topic_quota=60, eip_max=0))
    deadline = time.monotonic() + 30
    while True:
        vo = c.get_instance_list(m.GetInstanceListRequest(region_id=REGION, instance_id=[iid])).body.instance_list.instance_vo[0]
        # service_status 5 also covers EXTENDING (see the legacy SDK test below).
        huawei = server.client().show_instance(ShowInstanceRequest(instance_id=iid)).status
        if vo.disk_size == 800 and vo.service_status == 5 and huawei == "RUNNING":
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (vo.io_max, vo.topic_num_limit) == (40, 60)
    assert server.client().show_instance(ShowInstanceRequest(instance_id=iid)).storage_space == 800

    c.delete_topic(m.DeleteTopicRequest(region_id=REGION, instance_id=iid, topic="orders"))
    assert c.get_topic_list(m.GetTopicListRequest(region_id=REGION, instance_id=iid)).body.topic_list.topic_vo == []
    ids = c.get_all_instance_id_list(m.GetAllInstanceIdListRequest(region_id=REGION)).body.instance_ids
    assert ids == {REGION: [iid]}

    c.release_instance(m.ReleaseInstanceRequest(region_id=REGION, instance_id=iid, force_delete_instance=True))
    server.wait_gone(iid)
    with pytest.raises(Exception) as e:
        c.get_topic_list(m.GetTopicListRequest(region_id=REGION, instance_id=iid))
    assert getattr(e.value, "code", None) == "InvalidInstanceId.NotFound"


def test_legacy_sdk_every_operation_and_xml(server):
    """aliyun-python-sdk-alikafka (RPC HMAC-SHA1, Format=JSON) through every implemented action."""
    import importlib

    from aliyunsdkcore.client import AcsClient

    client = AcsClient(server.ak, server.sk, REGION)
    endpoint = server.url.split("//")[1]

    def call(action, **params):
        mod = importlib.import_module(f"aliyunsdkalikafka.request.v20190916.{action}Request")
        req = getattr(mod, f"{action}Request")()
        req.set_endpoint(endpoint)
        req.set_protocol_type("http")
        for k, v in params.items():
            getattr(req, f"set_{k}")(v)
        body = json.loads(client.do_action_with_exception(req))
        assert "RequestId" in body, body
        return body

    order = call("CreatePrePayOrder", DeployType=4, DiskSize=500, DiskType="0", IoMax=20, EipMax=1, TopicQuota=10,
                 Tags=[{"Key": "env", "Value": "test"}])
    assert order["Success"] is True and order["Code"] == 200
    listed = call("GetInstanceList")["InstanceList"]["InstanceVO"]
    assert [(v["ServiceStatus"], v["DiskType"], v["PaidType"]) for v in listed] == [(0, 0, 0)]
    iid = listed[0]["InstanceId"]
    assert call("GetAllInstanceIdList")["InstanceIds"] == {REGION: [iid]}
    call("StartInstance", InstanceId=iid, DeployModule="eip", VpcId="vpc-1", VSwitchId="vsw-1", ZoneId="zonea",
         IsEipInner=True, IsSetUserAndPassword=True, Username="admin-user", Password="Admin-pw1", Name="legacy")
    deadline = time.monotonic() + 30
    while call("GetInstanceList", InstanceIds=[iid])["InstanceList"]["InstanceVO"][0]["ServiceStatus"] != 5:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    call("ModifyInstanceName", InstanceId=iid, InstanceName="legacy-renamed")
    assert call("GetInstanceList")["InstanceList"]["InstanceVO"][0]["Name"] == "legacy-renamed"

    call("UpdateAllowedIp", InstanceId=iid, UpdateType="add", AllowedListType="vpc", PortRange="9092/9092",
         AllowedListIp="127.0.0.0/8")
    vpc = call("GetAllowedIpList", InstanceId=iid)["AllowedList"]["VpcList"]
    assert vpc == [{"PortRange": "9092/9092", "AllowedIpList": ["0.0.0.0/0", "127.0.0.0/8"]}]

    call("CreateTopic", InstanceId=iid, Topic="legacy-topic", Remark="first", PartitionNum="3")
    call("ModifyTopicRemark", InstanceId=iid, Topic="legacy-topic", Remark="second")
    call("ModifyPartitionNum", InstanceId=iid, Topic="legacy-topic", AddPartitionNum=3)
    topics = call("GetTopicList", InstanceId=iid, Topic="legacy")["TopicList"]["TopicVO"]
    assert [(t["Topic"], t["Remark"], t["PartitionNum"]) for t in topics] == [("legacy-topic", "second", 6)]
    status = call("GetTopicStatus", InstanceId=iid, Topic="legacy-topic")["TopicStatus"]
    assert status["TotalCount"] == 0 and len(status["OffsetTable"]["OffsetTable"]) == 6

    call("CreateConsumerGroup", InstanceId=iid, ConsumerId="legacy-group", Remark="g")
    groups = call("GetConsumerList", InstanceId=iid)["ConsumerList"]["ConsumerVO"]
    assert [(g["ConsumerId"], g["Remark"]) for g in groups] == [("legacy-group", "g")]
    progress = call("GetConsumerProgress", InstanceId=iid, ConsumerId="legacy-group")["ConsumerProgress"]
    assert progress["TotalDiff"] == 0

    call("CreateSaslUser", InstanceId=iid, Username="legacy-user", Password="Legacy-pw1", Type="plain")
    users = call("DescribeSaslUsers", InstanceId=iid)["SaslUserList"]["SaslUserVO"]
    assert ("legacy-user", "plain", "PLAIN") in [(u["Username"], u["Type"], u["Mechanism"]) for u in users]
    call("CreateAcl", InstanceId=iid, Username="legacy-user", AclResourceType="Topic", AclResourceName="legacy",
         AclResourcePatternType="PREFIXED", AclOperationTypes="Write,Read")
    acls = call("DescribeAcls", InstanceId=iid, Username="legacy-user", AclResourceType="Topic",
                AclResourceName="legacy")["KafkaAclList"]["KafkaAclVO"]
    assert sorted(a["AclOperationType"] for a in acls) == ["Read", "Write"]
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": "legacy-user", "sasl.password": "Legacy-pw1"}
    bs = call("GetInstanceList")["InstanceList"]["InstanceVO"][0]["EndPoint"]
    assert produce_outcome(bs, "legacy-topic", sasl) is None
    call("DeleteAcl", InstanceId=iid, Username="legacy-user", AclResourceType="Topic", AclResourceName="legacy",
         AclResourcePatternType="PREFIXED", AclOperationType="Write")
    assert produce_outcome(bs, "legacy-topic", sasl) is not None
    call("DeleteSaslUser", InstanceId=iid, Username="legacy-user")

    call("TagResources", ResourceType="INSTANCE", ResourceIds=[iid], Tags=[{"Key": "team", "Value": "core"}])
    tags = call("ListTagResources", ResourceType="INSTANCE", ResourceIds=[iid])["TagResources"]["TagResource"]
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags) == [("env", "test"), ("team", "core")]
    call("UntagResources", ResourceType="INSTANCE", ResourceIds=[iid], TagKeys=["env"])
    tags = call("ListTagResources", ResourceType="INSTANCE", ResourceIds=[iid])["TagResources"]["TagResource"]
    assert [(t["TagKey"], t["TagValue"]) for t in tags] == [("team", "core")]

    call("UpgradePrePayOrder", InstanceId=iid, DiskSize=900, IoMax=40, EipMax=1, TopicQuota=20)
    deadline = time.monotonic() + 30
    while True:
        vo = call("GetInstanceList")["InstanceList"]["InstanceVO"][0]
        # ServiceStatus 5 also covers EXTENDING, and the new DiskSize is recorded just before
        # the extension ends (the reconciler writes the size, then RUNNING): the Huawei
        # status says when it has ended.
        huawei = server.signed("GET", f"/v2/{server.project_id}/instances/{iid}").json()["status"]
        if vo["DiskSize"] == 900 and vo["ServiceStatus"] == 5 and huawei == "RUNNING":
            break
        assert time.monotonic() < deadline, vo
        time.sleep(0.1)
    assert (vo["IoMax"], vo["TopicNumLimit"]) == (40, 20)
    with pytest.raises(Exception) as e:
        call("UpgradePrePayOrder", InstanceId=iid, DiskSize=600, IoMax=40, EipMax=1, TopicQuota=20)
    assert "cannot go down" in str(e.value)
    # A partition count past 32 bits is refused, not wrapped around to a small one.
    r = rpc_call(server, "UpgradePrePayOrder", {"InstanceId": iid, "PartitionNum": str(2**32 + 1000)})
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidParameter"), r.text
    assert "PartitionNum" in r.json()["Message"]

    xml = rpc_call(server, "GetInstanceList", {}, fmt="XML")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    assert xml.text.startswith('<?xml version="1.0" encoding="UTF-8"?><GetInstanceListResponse>')
    assert "<RequestId>" in xml.text and "<Success>true</Success>" in xml.text
    assert f"<InstanceId>{iid}</InstanceId>" in xml.text and "<TagVO><Key>team</Key>" in xml.text

    call("DeleteTopic", InstanceId=iid, Topic="legacy-topic")
    call("DeleteConsumerGroup", InstanceId=iid, ConsumerId="legacy-group")
    call("ReleaseInstance", InstanceId=iid, ForceDeleteInstance=True)
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
    r = rpc_call(server, "DescribeMetricLast", {"Namespace": "acs_kafka"})
    assert (r.status_code, r.json()["Code"]) == (400, "MissingParameter")
    # Spaces, '+' and '*' in parameters are signed and decoded the same way by both schemes.
    for algorithm in (None, "v2"):
        body = ali_client(server, algorithm).get_instance_list(
            m.GetInstanceListRequest(region_id=REGION, instance_id=["a b+c*~"])).body
        assert body.success is True and body.instance_list.instance_vo == []
    # Garbage on the wire: a clean error, never a 5xx.
    for raw in [b"\x00\xff" * 50, b"Action=%zz&&&=", b"a=" + b"%" * 100]:
        r = requests.post(server.url + "/", data=raw, timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("text/xml"), (raw, r.text)
    r = requests.get(server.url + "/?Action=GetInstanceList&Version=2019-09-16&Format=JSON", timeout=10)
    assert (r.status_code, r.json()["Code"]) == (400, "MissingParameter")
    # Nothing was created by any of the refused calls.
    assert rpc_call(server, "GetInstanceList", {}).json()["InstanceList"]["InstanceVO"] == []


def order_and_deploy(server, c, **start):
    order = c.create_post_pay_order(m.CreatePostPayOrderRequest(
        region_id=REGION, deploy_type=4, disk_size=500, disk_type="1", io_max=20, eip_max=1)).body
    iid = c.get_instance_list(m.GetInstanceListRequest(region_id=REGION, order_id=order.order_id)).body.instance_list.instance_vo[0].instance_id
    c.start_instance(m.StartInstanceRequest(region_id=REGION, instance_id=iid, vpc_id="vpc-1", v_switch_id="vsw-1",
                                            zone_id="zonea", **start))
    return iid, deployed(c, iid)


def produce_outcome(bs, topic, extra):
    outcomes = []
    p = Producer({"bootstrap.servers": bs, "message.timeout.ms": 5000, **extra})
    p.produce(topic, b"x", on_delivery=lambda err, msg: outcomes.append(err))
    p.flush(15)
    return outcomes[0] if outcomes else "no delivery report"


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v2"])
def test_sasl_users_and_acls_are_enforced(server, algorithm):
    c = ali_client(server, algorithm)
    iid, vo = order_and_deploy(server, c, deploy_module="eip", is_eip_inner=True, is_set_user_and_password=True,
                               username="admin-user", password="Admin-pw1")
    bs = vo.end_point
    admin = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
             "sasl.username": "admin-user", "sasl.password": "Admin-pw1"}
    c.create_topic(m.CreateTopicRequest(region_id=REGION, instance_id=iid, topic="secured", remark="r", partition_num="1"))
    assert produce_outcome(bs, "secured", admin) is None, "the deployment's user is a super user"

    c.create_sasl_user(m.CreateSaslUserRequest(region_id=REGION, instance_id=iid, username="app-user", password="App-pw1",
                                               type="scram", mechanism="SCRAM-SHA-256"))
    users = c.describe_sasl_users(m.DescribeSaslUsersRequest(region_id=REGION, instance_id=iid)).body.sasl_user_list.sasl_user_vo
    assert {(u.username, u.type, u.mechanism) for u in users} >= {("app-user", "scram", "SCRAM-SHA-256")}
    app = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-256",
           "sasl.username": "app-user", "sasl.password": "App-pw1"}
    assert produce_outcome(bs, "secured", app) is not None, "no ACL yet: denied"

    c.create_acl(m.CreateAclRequest(region_id=REGION, instance_id=iid, username="app-user", acl_resource_type="Topic",
                                    acl_resource_name="secured", acl_resource_pattern_type="LITERAL",
                                    acl_operation_type="Write"))
    c.create_acl(m.CreateAclRequest(region_id=REGION, instance_id=iid, username="app-user", acl_resource_type="Topic",
                                    acl_resource_name="sec", acl_resource_pattern_type="PREFIXED",
                                    acl_operation_type="Read"))
    c.create_acl(m.CreateAclRequest(region_id=REGION, instance_id=iid, username="app-user", acl_resource_type="Group",
                                    acl_resource_name="app-group", acl_resource_pattern_type="LITERAL",
                                    acl_operation_type="Read"))
    acls = c.describe_acls(m.DescribeAclsRequest(region_id=REGION, instance_id=iid, username="app-user",
                                                 acl_resource_type="Topic", acl_resource_name="secured")).body.kafka_acl_list.kafka_acl_vo
    assert [(a.acl_operation_type, a.acl_resource_pattern_type, a.acl_permission_type) for a in acls] == [("Write", "LITERAL", "ALLOW")]
    assert produce_outcome(bs, "secured", app) is None
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "app-group", "auto.offset.reset": "earliest", **app})
    consumer.subscribe(["secured"])
    got, deadline = [], time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
    consumer.close()
    assert got == [b"x", b"x"]

    c.create_acl(m.CreateAclRequest(region_id=REGION, instance_id=iid, username="app-user", acl_resource_type="Topic",
                                    acl_resource_name="secured", acl_resource_pattern_type="LITERAL",
                                    acl_operation_type="Write", acl_permission_type="DENY"))
    assert produce_outcome(bs, "secured", app) is not None, "a DENY ACL wins over the ALLOW"
    c.delete_acl(m.DeleteAclRequest(region_id=REGION, instance_id=iid, username="app-user", acl_resource_type="Topic",
                                    acl_resource_name="secured", acl_resource_pattern_type="LITERAL",
                                    acl_operation_type="Write", acl_permission_type="DENY"))
    assert produce_outcome(bs, "secured", app) is None

    c.delete_sasl_user(m.DeleteSaslUserRequest(region_id=REGION, instance_id=iid, username="app-user"))
    assert produce_outcome(bs, "secured", app) is not None, "a deleted user cannot log in"


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v2"])
def test_allowed_ip_lists_are_enforced(server, algorithm):
    c = ali_client(server, algorithm)
    iid, vo = order_and_deploy(server, c, deploy_module="vpc")
    allowed = c.get_allowed_ip_list(m.GetAllowedIpListRequest(region_id=REGION, instance_id=iid)).body.allowed_list
    assert [(v.port_range, v.allowed_ip_list) for v in allowed.vpc_list] == [("9092/9092", ["0.0.0.0/0"])]
    c.create_topic(m.CreateTopicRequest(region_id=REGION, instance_id=iid, topic="topic-1", remark="r", partition_num="1"))
    assert produce_outcome(vo.end_point, "topic-1", {}) is None

    update = lambda kind, ip: c.update_allowed_ip(m.UpdateAllowedIpRequest(  # noqa: E731
        region_id=REGION, instance_id=iid, update_type=kind, allowed_list_type="vpc", port_range="9092/9092",
        allowed_list_ip=ip))
    update("add", "10.0.0.0/8")
    update("delete", "0.0.0.0/0")
    assert produce_outcome(vo.end_point, "topic-1", {}) is not None, "127.0.0.1 is not in 10.0.0.0/8"
    update("add", "127.0.0.0/8")
    assert produce_outcome(vo.end_point, "topic-1", {}) is None
    allowed = c.get_allowed_ip_list(m.GetAllowedIpListRequest(region_id=REGION, instance_id=iid)).body.allowed_list
    assert allowed.vpc_list[0].allowed_ip_list == ["10.0.0.0/8", "127.0.0.0/8"]
    r = rpc_call(server, "UpdateAllowedIp", {"InstanceId": iid, "UpdateType": "add", "AllowedListType": "vpc",
                                             "PortRange": "9092/9092", "AllowedListIp": "not-an-ip"})
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidParameter")


def test_throttling_at_the_documented_rates(serve_factory):
    server = serve_factory(env={"OPENDMS_ALIBABA_QPS": ""})
    codes = [rpc_call(server, "GetInstanceList", {}).json().get("Code") for _ in range(10)]
    assert codes.count(200) >= 3 and "Throttling.User" in codes, codes
    r = rpc_call(server, "GetInstanceList", {})
    if r.json()["Code"] == "Throttling.User":
        assert r.status_code == 400 and int(r.headers["x-acs-retry-after"]) > 0
    time.sleep(1.1)
    assert rpc_call(server, "GetInstanceList", {}).json()["Code"] == 200


def test_cloudmonitor_on_sampled_broker_figures(serve_factory):
    server = serve_factory(env={"OPENDMS_METRICS_INTERVAL_SECS": "1"})
    c = ali_client(server)
    iid, vo = order_and_deploy(server, c, deploy_module="vpc")
    c.create_topic(m.CreateTopicRequest(region_id=REGION, instance_id=iid, topic="metered", remark="r", partition_num="1"))
    time.sleep(1.5)  # a first sample, so that rates have a base
    p = Producer({"bootstrap.servers": vo.end_point})
    for i in range(200):
        p.produce("metered", b"x" * 1000, partition=0)
    assert p.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": vo.end_point, "group.id": "lagging"})
    consumer.commit(offsets=[TopicPartition("metered", 0, 50)], asynchronous=False)
    consumer.close()
    time.sleep(2.5)

    cms = lambda action, **params: rpc_call(server, action, params, version="2019-01-01")  # noqa: E731
    meta = cms("DescribeProjectMeta").json()
    assert [r["Namespace"] for r in meta["Resources"]["Resource"]] == ["acs_kafka"]
    metrics = cms("DescribeMetricMetaList", Namespace="acs_kafka").json()
    assert metrics["Code"] == "200" and int(metrics["TotalCount"]) == 7
    names = {r["MetricName"]: r["Dimensions"] for r in metrics["Resources"]["Resource"]}
    assert names["message_accumulation_onetopic"] == "instanceId,consumerGroup,topic"

    dims = json.dumps([{"instanceId": iid}])
    last = cms("DescribeMetricLast", Namespace="acs_kafka", MetricName="message_accumulation", Dimensions=dims).json()
    points = json.loads(last["Datapoints"])
    assert [(d["instanceId"], d["consumerGroup"], d["Maximum"]) for d in points] == [(iid, "lagging", 150)]

    listed = cms("DescribeMetricList", Namespace="acs_kafka", MetricName="instance_message_input", Dimensions=dims,
                 Period="1").json()
    inputs = json.loads(listed["Datapoints"])
    assert listed["Period"] == "1" and sum(d["Maximum"] for d in inputs) > 0, inputs
    data = cms("DescribeMetricData", Namespace="acs_kafka", MetricName="instance_disk_capacity", Dimensions=dims,
               Period="60").json()
    disk = json.loads(data["Datapoints"])
    assert disk and all(0 < d["Maximum"] < 100 for d in disk), disk
    top = cms("DescribeMetricTop", Namespace="acs_kafka", MetricName="message_accumulation_onetopic",
              Orderby="Maximum", Dimensions=dims).json()
    assert [(d["consumerGroup"], d["topic"], d["Maximum"]) for d in json.loads(top["Datapoints"])] == [("lagging", "metered", 150)]
    r = cms("DescribeMetricList", Namespace="acs_ecs_dashboard", MetricName="cpu_idle")
    assert (r.status_code, r.json()["Code"]) == (400, "InvalidParameter")
    # Another project's instances are not visible: an unknown instance id has no series.
    none = cms("DescribeMetricLast", Namespace="acs_kafka", MetricName="message_accumulation",
               Dimensions=json.dumps([{"instanceId": "8d2b1f7c-1f0e-4c2a-9d7a-0a1b2c3d4e5f"}])).json()
    assert json.loads(none["Datapoints"]) == []
