"""What the engine boundary and the façades' route tables promise, through public interfaces:
SDK operations OpenDMS lacks answer a distinct "not supported" error naming them, paths shared
by several engines are dispatched on the engine, the Kafka v2 topic limits and instance
fields follow the SDK while /v1.0 keeps seed 000's, lifecycle read delays count reads through
both façades, and two servers share one broker address pool."""

import time

import pytest
from confluent_kafka import Consumer, Producer
from control_plane import bootstrap
from huaweicloudsdkcore.exceptions.exceptions import ServiceResponseException
from huaweicloudsdkkafka.v2 import (
    CreateInstanceTopicReq, CreateInstanceTopicRequest, ListInstanceConsumerGroupsRequest,
    ShowInstanceRequest, ShowInstanceUsersRequest, ShowKafkaInstanceExtendProductInfoRequest,
    UpdateInstanceTopicReq, UpdateInstanceTopicReqTopics, UpdateInstanceTopicRequest,
)
from test_alibaba_api import REGION, ali_client, rpc_call
from test_huawei_api import create_instance, produce

NOT_SUPPORTED = "DMS.00501001"


def sdk_error(call):
    with pytest.raises(ServiceResponseException) as e:
        call()
    return e.value.status_code, e.value.error_code, e.value.error_msg


def running_instance(server, name):
    iid = create_instance(server, name)
    show, _ = server.wait_status(iid, "RUNNING")
    return iid, show


def test_sdk_operations_opendms_lacks_answer_not_supported(server):
    c = server.client()
    iid, _ = running_instance(server, "unsupported-1")
    p = server.project_id
    # Through the official SDK: an operation on a path OpenDMS does not have at all...
    status, code, msg = sdk_error(lambda: c.show_instance_users(ShowInstanceUsersRequest(instance_id=iid)))
    assert (status, code) == (501, NOT_SUPPORTED) and "show_instance_users" in msg
    # ... one on a path several engines share, named after the instance's engine ...
    status, code, msg = sdk_error(lambda: c.list_instance_consumer_groups(
        ListInstanceConsumerGroupsRequest(instance_id=iid)))
    assert (status, code) == (501, NOT_SUPPORTED) and "list_instance_consumer_groups" in msg
    # ... and a GET on a path where OpenDMS has only the POST: that GET's operation, not 405.
    status, code, msg = sdk_error(lambda: c.show_kafka_instance_extend_product_info(
        ShowKafkaInstanceExtendProductInfoRequest(instance_id=iid, type="advanced")))
    assert (status, code) == (501, NOT_SUPPORTED) and "show_kafka_instance_extend_product_info" in msg
    # RabbitMQ creates reach RabbitMQ's rules whichever path names the engine (path segment,
    # body field): this body lacks its VPC.
    rabbit = {"name": "rabbit-1", "engine": "rabbitmq", "engine_version": "3.8.35"}
    for path in [f"/v2/rabbitmq/{p}/instances", f"/v2/{p}/instances"]:
        r = server.signed("POST", path, rabbit)
        assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400013"), (path, r.text)
    # So do RocketMQ's (seed 001's engine name `reliability`) on each of its create paths.
    rocket = {"name": "rocket-1", "engine": "reliability", "engine_version": "4.8.0"}
    for path in [f"/v2/{p}/rocketmq/instances", f"/v2/reliability/{p}/instances", f"/v2/{p}/instances"]:
        r = server.signed("POST", path, rocket)
        assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400013"), (path, r.text)
    # An SDK operation of an engine OpenDMS has no handler for answers "not supported".
    r = server.signed("GET", f"/v2/{p}/rocketmq/instances/{iid}/diagnosis")
    assert (r.status_code, r.json()["error_code"]) == (501, NOT_SUPPORTED), r.text
    assert "list_diagnosis_reports_for_rocket_mq" in r.json()["error_msg"], r.text
    r = server.signed("GET", f"/v2/{p}/rabbitmq/tags")
    assert r.status_code == 200 and r.json() == {"tags": []}, r.text
    # Each engine's API sees only its own instances.
    r = server.signed("GET", f"/v2/{p}/rabbitmq/{iid}/tags")
    assert (r.status_code, r.json()["error_code"]) == (404, "DMS.00404022"), r.text
    # An engine no document knows is the documented "unsupported type".
    r = server.signed("POST", f"/v2/redis/{p}/instances", rabbit)
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400007"), r.text
    r = server.signed("GET", f"/v2/{p}/instances", query={"engine": "redis"})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400007"), r.text
    # Paths no SDK has, and methods no SDK uses, keep their answers.
    r = server.signed("GET", f"/v2/{p}/no/such/path")
    assert (r.status_code, r.json()["error_code"]) == (404, "DMS.00404001"), r.text
    r = server.signed("GET", f"/v1.0/{p}/instances/{iid}/topics/diskusage")
    assert (r.status_code, r.json()["error_code"]) == (404, "111404001"), r.text
    r = server.signed("PATCH", f"/v2/{p}/instances/{iid}")
    assert (r.status_code, r.json()["error_code"]) == (405, "DMS.00405001"), r.text
    # Nothing was created, and unauthenticated callers learn nothing.
    assert server.signed("GET", f"/v2/{p}/instances", query={"include_failure": "true"}).json()["instance_num"] == 1
    import requests
    r = requests.get(server.url + f"/v2/{p}/instances/{iid}/users", timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (401, "DMS.00401003")


def test_alibaba_actions_opendms_lacks_answer_not_supported(server):
    r = rpc_call(server, "QueryMessage", {"InstanceId": "x", "Topic": "t"})
    assert (r.status_code, r.json()["Code"]) == (501, "UnsupportedAction"), r.text
    assert "QueryMessage" in r.json()["Message"]
    r = rpc_call(server, "EnableAutoTopicCreation", {"InstanceId": "x", "Operate": "enable"})
    assert (r.status_code, r.json()["Code"]) == (501, "UnsupportedAction"), r.text
    r = rpc_call(server, "NoSuchAction", {})
    assert (r.status_code, r.json()["Code"]) == (404, "InvalidAction.NotFound"), r.text


def test_topic_rules_follow_the_api_generation(server):
    c = server.client()
    iid, show = running_instance(server, "topic-rules")
    p = server.project_id
    # v2: names with dots up to 200 characters, 200 partitions, 720 hours.
    long_name = "orders." + "x" * 193
    created = c.create_instance_topic(CreateInstanceTopicRequest(instance_id=iid, body=CreateInstanceTopicReq(
        id=long_name, partition=200, replication=1, retention_time=720)))
    assert created.name == long_name
    c.update_instance_topic(UpdateInstanceTopicRequest(instance_id=iid, body=UpdateInstanceTopicReq(topics=[
        UpdateInstanceTopicReqTopics(id=long_name, retention_time=700)])))
    r = server.signed("PUT", f"/v2/{p}/instances/{iid}/topics",
                      {"topics": [{"id": long_name, "retention_time": 721}]})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400105"), r.text
    r = server.signed("PUT", f"/v2/{p}/instances/{iid}/topics",
                      {"topics": [{"id": long_name, "new_partition_numbers": 201}]})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400102"), r.text
    listed = server.signed("GET", f"/v2/{p}/instances/{iid}/topics").json()
    assert listed["topic_max_partitions"] == 200
    mine = [t for t in listed["topics"] if t["name"] == long_name][0]
    assert (mine["partition"], mine["retention_time"]) == (200, 700)
    # /v1.0 keeps seed 000's Table 5-23: 4-64 characters without dots, 1-20 partitions, 1-168 h.
    v1 = f"/v1.0/{p}/instances/{iid}/topics"
    for body, code in [({"id": "orders.eu"}, "111400101"), ({"id": "abc"}, "111400101"),
                       ({"id": "orders-v1", "partition": 21}, "111400102"),
                       ({"id": "orders-v1", "retention_time": 169}, "111400105")]:
        r = server.signed("POST", v1, body)
        assert (r.status_code, r.json()["error_code"]) == (400, code), (body, r.text)
    r = server.signed("POST", v1, {"id": "orders-v1", "partition": 20, "retention_time": 168})
    assert r.status_code == 200 and r.json() == {"id": "orders-v1"}, r.text
    # The topics are real: a client produces to the long name.
    produce(bootstrap(show), long_name, 5)


V1_SHOW_FIELDS = {  # seed 000 Table 5-6
    "name", "engine", "engine_version", "specification", "storage_space", "partition_num", "used_storage_space",
    "connect_address", "port", "status", "instance_id", "resource_spec_code", "type", "charging_mode", "vpc_id",
    "vpc_name", "created_at", "product_id", "security_group_id", "security_group_name", "subnet_id", "subnet_name",
    "subnet_cidr", "available_zones", "user_id", "user_name", "access_user", "maintain_begin", "maintain_end",
    "management_connect_address", "ssl_enable", "enable_auto_topic", "total_storage_space", "storage_resource_id",
    "storage_spec_code", "service_type", "storage_type", "retention_policy",
}
V1_LIST_FIELDS = {  # seed 000 Table 5-20
    "name", "engine", "engine_version", "specification", "storage_space", "partition_num", "used_storage_space",
    "connect_address", "port", "status", "instance_id", "resource_spec_code", "charging_mode", "vpc_id", "vpc_name",
    "created_at", "user_id", "user_name", "maintain_begin", "maintain_end", "enterprise_project_id",
    "is_logical_volume", "extend_times", "enable_auto_topic", "type", "product_id", "security_group_id",
    "security_group_name", "subnet_id", "available_zones", "total_storage_space", "storage_resource_id",
    "storage_spec_code", "service_type", "storage_type", "retention_policy",
}


def test_instances_show_every_documented_field(server):
    c = server.client()
    iid, _ = running_instance(server, "fields-1")
    show = c.show_instance(ShowInstanceRequest(instance_id=iid))
    zones = server.signed("GET", "/v2/available-zones").json()["available_zones"]
    assert show.vpc_name == "vpc-1" and show.subnet_name == "subnet-1" and show.security_group_name == "sg-1"
    pool_net = ".".join(server.pool.split(".")[:3]) + ".0/24"
    assert show.subnet_cidr == pool_net, show.subnet_cidr
    assert all(ip.startswith(pool_net[:-5]) for ip in show.connect_address.split(","))
    assert show.available_zone_names == [zones[0]["name"]]
    assert len(show.storage_resource_id) == 36 and show.storage_resource_id != iid
    assert show.management_connect_address == "" and show.support_features == ""
    assert show.enable_acl is False and show.kafka_private_connect_address
    again = c.show_instance(ShowInstanceRequest(instance_id=iid))
    assert again.storage_resource_id == show.storage_resource_id

    v1 = server.signed("GET", f"/v1.0/{server.project_id}/instances/{iid}").json()
    assert V1_SHOW_FIELDS <= set(v1), sorted(V1_SHOW_FIELDS - set(v1))
    listed = server.signed("GET", f"/v1.0/{server.project_id}/instances").json()["instances"][0]
    assert V1_LIST_FIELDS <= set(listed), sorted(V1_LIST_FIELDS - set(listed))
    assert (v1["subnet_cidr"], listed["vpc_name"]) == (pool_net, "vpc-1")


def test_read_delays_count_reads_through_both_facades(server):
    a = ali_client(server)
    from alibabacloud_alikafka20190916 import models as m
    r = server.signed("PUT", "/opendms/admin/lifecycle", {"create": {"delay_reads": 3}})
    assert r.status_code == 200
    order = a.create_post_pay_order(m.CreatePostPayOrderRequest(
        region_id=REGION, deploy_type=5, disk_size=500, disk_type="1", io_max=20)).body
    listing = lambda: a.get_instance_list(m.GetInstanceListRequest(  # noqa: E731
        region_id=REGION, order_id=order.order_id)).body.instance_list.instance_vo[0]
    iid = listing().instance_id
    a.start_instance(m.StartInstanceRequest(region_id=REGION, instance_id=iid, vpc_id="v", v_switch_id="s"))
    time.sleep(0.5)  # the brokers are up well before the reads run out
    # Two Alibaba listings and one Huawei show still see the deployment; the next one does not.
    seen = [listing().service_status, listing().service_status,
            server.client().show_instance(ShowInstanceRequest(instance_id=iid)).status, listing().service_status]
    assert seen == [1, 1, "CREATING", 5], seen


def test_two_servers_share_the_default_address_pool(serve_factory):
    # Both run with the default broker pool and port (127.0.1.1 and up, 9092); each skips
    # the addresses the other (or anything else on this host) holds.
    defaults = ("OPENDMS_BROKER_IP_POOL", "OPENDMS_BROKER_PORT")
    first = serve_factory("first", unset=defaults)
    second = serve_factory("second", unset=defaults)
    a, show_a = running_instance(first, "pool-a")
    b, show_b = running_instance(second, "pool-b")
    ips_a, ips_b = set(show_a.connect_address.split(",")), set(show_b.connect_address.split(","))
    assert not ips_a & ips_b, (ips_a, ips_b)
    assert show_a.port == show_b.port == 9092
    for show, topic in [(show_a, "on-first"), (show_b, "on-second")]:
        produce(bootstrap(show), topic, 3)
        consumer = Consumer({"bootstrap.servers": bootstrap(show), "group.id": "g", "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
        consumer.close()
        assert len(got) == 3, (topic, got)
    # Each server's brokers answer for their own instance only.
    p = Producer({"bootstrap.servers": bootstrap(show_a)})
    p.list_topics(timeout=10)
    md = Consumer({"bootstrap.servers": bootstrap(show_b), "group.id": "x"}).list_topics(timeout=10)
    assert "on-second" in md.topics and "on-first" not in md.topics


def test_alibaba_actions_do_not_see_other_engines_instances(server):
    # The Alibaba API is Message Queue for Kafka's: a RabbitMQ instance of the same project,
    # created through the Huawei API, is not an instance there (nothing changes on it).
    from huaweicloudsdkrabbitmq.v2 import ShowInstanceRequest as ShowRabbitInstanceRequest
    from test_rabbitmq_api import create, rabbit_client, wait_running
    c = rabbit_client(server)
    iid = create(c, "rabbit-not-kafka")
    wait_running(c, iid)
    for action, params in [
        ("GetTopicList", {"InstanceId": iid}),
        ("CreateTopic", {"InstanceId": iid, "Topic": "t1", "Remark": "r"}),
        ("CreateConsumerGroup", {"InstanceId": iid, "ConsumerId": "g1"}),
        ("ModifyInstanceName", {"InstanceId": iid, "InstanceName": "renamed"}),
        ("ReleaseInstance", {"InstanceId": iid, "ForceDeleteInstance": "true"}),
        ("TagResources", {"ResourceType": "INSTANCE", "ResourceId.1": iid, "Tag.1.Key": "k", "Tag.1.Value": "v"}),
    ]:
        r = rpc_call(server, action, params)
        assert (r.status_code, r.json()["Code"]) == (404, "InvalidInstanceId.NotFound"), (action, r.text)
    # Listings filter the Kafka instances they list: the id matches none.
    r = rpc_call(server, "GetInstanceList", {"InstanceId.1": iid})
    assert r.status_code == 200 and r.json()["InstanceList"]["InstanceVO"] == [], r.text
    shown = c.show_instance(ShowRabbitInstanceRequest(instance_id=iid))
    assert (shown.status, shown.name) == ("RUNNING", "rabbit-not-kafka"), shown
