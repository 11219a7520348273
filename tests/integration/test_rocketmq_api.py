"""The Huawei DMS for RocketMQ API (seed 001) through the official huaweicloudsdkrocketmq
SDK, on real brokers: an instance created through the API is a name server and brokers the
official Java client uses at `namesrv_address`; topics, groups, messages, traces, dead
letters, offsets and ACL users the API shows or changes are the brokers' own, and they
survive a restart of `opendms serve`."""

import json
import queue
import subprocess
import threading
import time

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkrocketmq.v2 import (
    BatchCreateOrDeleteRocketmqTagRequest, BatchCreateOrDeleteTagReq, BatchDeleteInstanceReq,
    BatchDeleteInstancesRequest, BatchDeleteRocketMqMigrationTaskRequest, BatchUpdateConsumerGroup,
    BatchUpdateConsumerGroupReq, BatchUpdateConsumerGroupRequest, CreateConsumerGroupOrBatchDeleteConsumerGroupReq,
    CreateConsumerGroupOrBatchDeleteConsumerGroupRequest, CreateInstanceByEngineReq, CreateInstanceByEngineRequest,
    CreatePostPaidInstanceReq, CreatePostPaidInstanceRequest, CreateRocketMqMigrationTaskReq,
    CreateRocketMqMigrationTaskRequest, CreateTopicOrBatchDeleteTopicReq, CreateTopicOrBatchDeleteTopicRequest,
    CreateUserRequest, DeadletterResendReq, DeleteConsumerGroupRequest, DeleteInstanceRequest, DeleteUserRequest,
    ListAvailableZonesRequest, ListBrokersRequest, ListConsumeGroupAccessPolicyRequest,
    ListConsumerGroupOfTopicRequest, ListEngineProductsRequest, ListInstanceConsumerGroupsRequest,
    ListInstancesRequest, ListMessagesRequest, ListMessageTraceRequest, ListRocketInstanceTopicsRequest,
    ListRocketMqMigrationTaskRequest, ListTopicAccessPolicyRequest, ListUserRequest, MetadataDeleteReq,
    ResizeEngineInstanceReq, ResizeInstanceRequest, RestartInstanceRequest, ShowEngineInstanceExtendProductInfoRequest,
    ModifyConfigReq, RocketMQConfigReq, ShowRocketMqConfigsRequest, UpdateRocketMqConfigsRequest,
    MigrationRocketMqTopicConfig, ResendReq, ResetConsumeOffsetReq, ResetConsumeOffsetRequest, RocketMQClient,
    SendDlqMessageRequest, SendMessageProperties, SendMessageReq, SendMessageRequest, ShowConsumerConnectionsRequest,
    ShowConsumerListOrDetailsRequest, ShowGroupRequest, ShowInstanceNodesRequest, ShowInstanceRequest,
    ShowOneTopicRequest, ShowTopicStatusRequest, ShowUserRequest, TagEntity, UpdateConsumerGroup,
    UpdateConsumerGroupRequest, UpdateInstanceReq, UpdateInstanceRequest, UpdateTopicReq, UpdateTopicRequest,
    UpdateUserRequest, User, UserGroupPerms, UserTopicPerms, ValidateConsumedMessageRequest,
)
from conftest import REPO, run_client

JAVA_JAR = REPO / "target" / "rocketmq-java-client" / "rocketmq-java-workload.jar"
ENGINE = "reliability"


def rocket_client(server, project_id=None, ak=None, sk=None):
    creds = BasicCredentials(ak or server.ak, sk or server.sk, project_id or server.project_id)
    return RocketMQClient.new_builder().with_credentials(creds).with_endpoint(server.url).build()


def create_fields(c, name, **overrides):
    zone = c.list_available_zones(ListAvailableZonesRequest()).available_zones[0].id
    # Seed 001 5.1.1's example body.
    fields = dict(name=name, description="", engine=ENGINE, engine_version="4.8.0", storage_space=600,
                  vpc_id="vpc-1", subnet_id="subnet-1", security_group_id="sg-1", available_zones=[zone],
                  product_id="c6.4u8g.cluster", ssl_enable=False, storage_spec_code="dms.physical.storage.ultra.v2",
                  ipv6_enable=False, enable_publicip=False, publicip_id="", broker_num=1)
    fields.update(overrides)
    return fields


def create(c, name, **overrides):
    body = CreateInstanceByEngineReq(**create_fields(c, name, **overrides))
    return c.create_instance_by_engine(CreateInstanceByEngineRequest(engine=ENGINE, body=body)).instance_id


def wait_running(c, iid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = c.show_instance(ShowInstanceRequest(instance_id=iid))
        if s.status == "RUNNING":
            return s
        assert s.status in ("CREATING", "RESTARTING", "EXTENDING"), s
        time.sleep(0.05)
    raise AssertionError(f"{iid} never became RUNNING")


def api_error(call):
    with pytest.raises(ClientRequestException) as e:
        call()
    return e.value.status_code, e.value.error_code


def java(*args, timeout=300):
    if not JAVA_JAR.exists():
        pytest.fail(f"{JAVA_JAR} is missing: scripts/setup-test-env builds it (mvn package)")
    return run_client(["java", "-jar", str(JAVA_JAR), *map(str, args)], timeout=timeout)


class LiveClient:
    """The Java workload's `live` scenario: a trace-enabled push consumer and producer,
    driven line by line while the test acts through the API."""

    def __init__(self, namesrv, topic, group):
        self.proc = subprocess.Popen(["java", "-jar", str(JAVA_JAR), "live", namesrv, topic, group],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.events = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.client_id = self.wait(lambda e: e["event"] == "ready", 60)["clientId"]

    def _pump(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                pass

    def wait(self, pred, timeout=60):
        for e in self.seen:
            if pred(e):
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                e = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(e)
            if pred(e):
                return e
        raise AssertionError(f"no such event in {timeout}s; seen {self.seen[-10:]}")

    def received(self, key):
        return [e for e in self.seen if e["event"] == "received" and e["key"] == key]

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def send(self, key):
        self.command(f"send {key}")
        e = self.wait(lambda e: e["event"] == "sent" and e["key"] == key)
        assert e["status"] == "SEND_OK", e
        return e

    def close(self):
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(timeout=20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def live_clients():
    started = []

    def make(*args):
        c = LiveClient(*args)
        started.append(c)
        return c

    yield make
    for c in started:
        c.close()


def test_rocketmq_instance_lifecycle_topics_groups_and_validation(serve_factory):
    server = serve_factory()
    c = rocket_client(server)
    products = c.list_engine_products(ListEngineProductsRequest(engine=ENGINE))
    assert products.engine == ENGINE and products.versions == ["4.8.0"]
    assert {p.product_id for p in products.products} == {
        "c6.4u8g.cluster", "c6.8u16g.cluster", "c6.12u24g.cluster", "c6.16u32g.cluster"}

    # Each documented rule answers its own code; nothing is created.
    def refused(**overrides):
        name = overrides.pop("name", "bad-rocket")
        return api_error(lambda: create(c, name, **overrides))
    assert refused(engine_version="4.9.7") == (400, "DMS.00400008")
    assert refused(product_id="c6.2u4g.cluster") == (400, "DMS.00400009")
    assert refused(broker_num=11) == (400, "DMS.00400063")
    assert refused(storage_space=100) == (400, "DMS.00400500")
    assert refused(storage_spec_code="dms.physical.storage.high") == (400, "DMS.00400125")
    assert refused(available_zones=["nope"]) == (400, "DMS.00400042")
    assert refused(name="1bad") == (400, "DMS.00400010")
    assert refused(ssl_enable=True)[1] == "DMS.00400800"
    assert c.list_instances(ListInstancesRequest(engine=ENGINE)).instance_num == 0

    # The lifecycle controls apply: an injected failure ends CREATEFAILED with its reason, and
    # all_failure=reliability deletes it.
    p = server.project_id
    assert server.signed("PUT", "/opendms/admin/lifecycle", {"create": {"fail_next": True}}).status_code == 200
    doomed = create(c, "rocket-doomed")
    deadline = time.monotonic() + 30
    while (shown := server.signed("GET", f"/v2/{p}/instances/{doomed}").json())["status"] == "CREATING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert shown["status"] == "CREATEFAILED" and "injected" in shown["status_reason"], shown
    assert c.list_instances(ListInstancesRequest(engine=ENGINE)).instance_num == 0
    assert c.list_instances(ListInstancesRequest(engine=ENGINE, include_failure="true")).instance_num == 1
    r = server.signed("POST", f"/v2/{p}/instances/action", {"action": "delete", "all_failure": ENGINE})
    assert r.status_code == 204, r.text
    while server.signed("GET", f"/v2/{p}/instances/{doomed}").status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    # Seed 001's own path and body (no broker_num: one broker).
    fields = create_fields(c, "rocket-life", broker_num=None)
    iid = c.create_post_paid_instance(CreatePostPaidInstanceRequest(
        body=CreatePostPaidInstanceReq(**{k: v for k, v in fields.items() if v is not None}))).instance_id
    show = wait_running(c, iid)
    assert (show.engine, show.engine_version, show.type, show.broker_num) == (ENGINE, "4.8.0", "cluster", 1)
    assert show.specification == "c6.4u8g.cluster * 1 broker" and show.storage_space == 600
    assert show.enable_acl is False and show.node_num == 2
    ns_ip, ns_port = show.namesrv_address.split(":")
    assert ns_port == "8100" and show.broker_address == f"{ns_ip}:10100"
    assert ns_ip in json.loads(show.cross_vpc_info)
    # The name server answers RocketMQ clients there: a topic made through the API is routed.
    c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="life-topic", queue_num=2)))
    assert java("produce", show.namesrv_address, "life-topic", 20) == {"sent": 20}
    c.delete_instance(DeleteInstanceRequest(instance_id=iid))

    # Two brokers: topics and groups spread over both.
    iid = create(c, "rocket-two", broker_num=2, storage_space=1200)
    show = wait_running(c, iid)
    brokers = c.list_brokers(ListBrokersRequest(instance_id=iid)).brokers
    assert [(b.broker_name, b.ids) for b in brokers] == [("broker-0", [0]), ("broker-1", [0])]
    nodes = c.show_instance_nodes(ShowInstanceNodesRequest(engine=ENGINE, instance_id=iid)).nodes
    assert [n.address for n in nodes] == show.broker_address.split(",")

    t = c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="orders", brokers=["broker-0", "broker-1"],
                                                               queue_num=3, permission="all")))
    assert t.id == "orders"
    topic = c.show_one_topic(ShowOneTopicRequest(instance_id=iid, topic="orders"))
    assert (topic.total_read_queue_num, topic.total_write_queue_num, topic.permission) == (6, 6, "all")
    assert sorted(b.broker_name for b in topic.brokers) == ["broker-0", "broker-1"]
    c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="only-one", brokers=["broker-1"])))
    assert c.show_one_topic(ShowOneTopicRequest(instance_id=iid, topic="only-one")).total_write_queue_num == 8
    assert api_error(lambda: c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="orders")))) == (400, "DMS.00400800")
    assert api_error(lambda: c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="big", queue_num=51))))[1] == "DMS.00400063"
    assert api_error(lambda: c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="x y"))))[1] == "DMS.00400063"
    c.update_topic(UpdateTopicRequest(instance_id=iid, topic="orders",
                                      body=UpdateTopicReq(read_queue_num=4, write_queue_num=4, permission="sub")))
    topic = c.show_one_topic(ShowOneTopicRequest(instance_id=iid, topic="orders"))
    assert (topic.total_write_queue_num, topic.permission) == (8, "sub")
    # A producer cannot write to a read-only topic; a topic it creates itself is listed.
    c.update_topic(UpdateTopicRequest(instance_id=iid, topic="orders", body=UpdateTopicReq(permission="all")))
    assert java("produce", show.namesrv_address, "orders", 40) == {"sent": 40}
    assert java("produce", show.namesrv_address, "auto-made", 4) == {"sent": 4}
    listed = c.list_rocket_instance_topics(ListRocketInstanceTopicsRequest(instance_id=iid, limit=50))
    assert {t.name for t in listed.topics} == {"orders", "only-one", "auto-made"} and listed.total == 3
    status = c.show_topic_status(ShowTopicStatusRequest(instance_id=iid, topic="orders"))
    assert sum(q.max_offset for b in status.brokers for q in b.queues) == 40
    assert all(q.last_message_time > 0 for b in status.brokers for q in b.queues if q.max_offset > 0)

    # Storage extension grows the brokers' quota live; a restart brings them back with their
    # topics and messages; scaling by brokers or flavor is refused by name.
    ext = c.show_engine_instance_extend_product_info(ShowEngineInstanceExtendProductInfoRequest(
        engine=ENGINE, instance_id=iid))
    assert "c6.8u16g.cluster" in {p.product_id for p in ext.products}
    job = c.resize_instance(ResizeInstanceRequest(engine=ENGINE, instance_id=iid, body=ResizeEngineInstanceReq(
        oper_type="storage", new_storage_space=1500)))
    assert job.job_id
    assert wait_running(c, iid).storage_space == 1500
    assert api_error(lambda: c.resize_instance(ResizeInstanceRequest(
        engine=ENGINE, instance_id=iid, body=ResizeEngineInstanceReq(oper_type="horizontal", new_broker_num=3))))[1] \
        == "DMS.00400800"
    # The brokers' live configuration: checked, applied at once, kept across a restart.
    configs = {x.name: x for x in c.show_rocket_mq_configs(ShowRocketMqConfigsRequest(instance_id=iid)).rocketmq_configs}
    assert (configs["maxMessageSize"].value, configs["fileReservedTime"].value) == ("4194304", "72")
    for bad in [RocketMQConfigReq(name="brokerRole", value="SLAVE"), RocketMQConfigReq(name="maxMessageSize", value="0")]:
        assert api_error(lambda: c.update_rocket_mq_configs(UpdateRocketMqConfigsRequest(
            instance_id=iid, body=ModifyConfigReq(rocketmq_configs=[bad]))))[1] == "DMS.00400063"
    c.update_rocket_mq_configs(UpdateRocketMqConfigsRequest(instance_id=iid, body=ModifyConfigReq(rocketmq_configs=[
        RocketMQConfigReq(name="maxMessageSize", value="100"), RocketMQConfigReq(name="fileReservedTime", value="24")])))
    big = SendMessageRequest(engine=ENGINE, instance_id=iid, body=SendMessageReq(topic="only-one", body="x" * 200))
    assert api_error(lambda: c.send_message(big))[1] == "DMS.00400800"
    restarted = c.restart_instance(RestartInstanceRequest(engine=ENGINE, instance_id=iid))
    assert restarted.result == "success"
    wait_running(c, iid)
    status = c.show_topic_status(ShowTopicStatusRequest(instance_id=iid, topic="orders"))
    assert sum(q.max_offset for b in status.brokers for q in b.queues) == 40
    configs = {x.name: x.value for x in c.show_rocket_mq_configs(
        ShowRocketMqConfigsRequest(instance_id=iid)).rocketmq_configs}
    assert (configs["maxMessageSize"], configs["fileReservedTime"]) == ("100", "24")
    assert api_error(lambda: c.send_message(big))[1] == "DMS.00400800"
    c.update_rocket_mq_configs(UpdateRocketMqConfigsRequest(instance_id=iid, body=ModifyConfigReq(rocketmq_configs=[
        RocketMQConfigReq(name="maxMessageSize", value="4194304")])))
    assert c.send_message(big).msg_id

    # Consumer groups.
    g = c.create_consumer_group_or_batch_delete_consumer_group(CreateConsumerGroupOrBatchDeleteConsumerGroupRequest(
        instance_id=iid, body=CreateConsumerGroupOrBatchDeleteConsumerGroupReq(
            name="billing", brokers=["broker-0"], broadcast=False, retry_max_time=5)))
    assert g.name == "billing"
    shown = c.show_group(ShowGroupRequest(instance_id=iid, group="billing"))
    assert (shown.brokers, shown.retry_max_time, shown.broadcast, shown.enabled) == (["broker-0"], 5, False, True)
    assert api_error(lambda: c.create_consumer_group_or_batch_delete_consumer_group(
        CreateConsumerGroupOrBatchDeleteConsumerGroupRequest(
            instance_id=iid, body=CreateConsumerGroupOrBatchDeleteConsumerGroupReq(name="billing")))) \
        == (400, "DMS.10240018")
    assert api_error(lambda: c.create_consumer_group_or_batch_delete_consumer_group(
        CreateConsumerGroupOrBatchDeleteConsumerGroupRequest(
            instance_id=iid, body=CreateConsumerGroupOrBatchDeleteConsumerGroupReq(name="b!")))) \
        == (400, "DMS.10240016")
    assert api_error(lambda: c.show_group(ShowGroupRequest(instance_id=iid, group="nobody"))) == (404, "DMS.10240405")
    c.update_consumer_group(UpdateConsumerGroupRequest(instance_id=iid, group="billing",
                                                       body=UpdateConsumerGroup(broadcast=True, retry_max_time=3)))
    c.batch_update_consumer_group(BatchUpdateConsumerGroupRequest(instance_id=iid, body=BatchUpdateConsumerGroupReq(
        groups=[BatchUpdateConsumerGroup(name="billing", enabled=False)])))
    shown = c.show_group(ShowGroupRequest(instance_id=iid, group="billing"))
    assert (shown.broadcast, shown.retry_max_time, shown.enabled) == (True, 3, False)
    # A group a client made by consuming is listed beside it, with the topics it consumes.
    got = java("consume", show.namesrv_address, "from-client", "orders", 40, 60)
    assert got == {"distinct": 40, "total": 40}
    groups = c.list_instance_consumer_groups(ListInstanceConsumerGroupsRequest(instance_id=iid))
    assert {g.name for g in groups.groups} == {"billing", "from-client"} and groups.max == 8000
    lag = c.show_consumer_list_or_details(ShowConsumerListOrDetailsRequest(
        instance_id=iid, group="from-client", topic="orders"))
    queues = [q for b in lag.brokers for q in b.queues]
    assert sum(q.broker_offset for q in queues) == 40 and all(q.lag == 0 for q in queues)
    assert c.show_consumer_list_or_details(ShowConsumerListOrDetailsRequest(
        instance_id=iid, group="from-client")).topics == ["orders"]
    assert c.list_consumer_group_of_topic(ListConsumerGroupOfTopicRequest(
        instance_id=iid, topic="orders")).groups == ["from-client"]
    c.delete_consumer_group(DeleteConsumerGroupRequest(instance_id=iid, group="from-client"))
    r = c.create_consumer_group_or_batch_delete_consumer_group(CreateConsumerGroupOrBatchDeleteConsumerGroupRequest(
        instance_id=iid, action="delete", body=CreateConsumerGroupOrBatchDeleteConsumerGroupReq(groups=["billing"])))
    assert r.job_id
    assert c.list_instance_consumer_groups(ListInstanceConsumerGroupsRequest(instance_id=iid)).total == 0
    r = c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, action="delete", body=CreateTopicOrBatchDeleteTopicReq(topics=["only-one", "auto-made"])))
    assert r.job_id
    assert [t.name for t in c.list_rocket_instance_topics(
        ListRocketInstanceTopicsRequest(instance_id=iid)).topics] == ["orders"]

    # Metadata migration from an mqadmin export, through the SDK; the task says what it did.
    task = c.create_rocket_mq_migration_task(CreateRocketMqMigrationTaskRequest(
        instance_id=iid, overwrite="false", name="task-import", type="rocketmq",
        body=CreateRocketMqMigrationTaskReq(topic_config_table={
            "imported": MigrationRocketMqTopicConfig(topic_name="imported", read_queue_nums=2, write_queue_nums=2,
                                                     perm=6, topic_filter_type="SINGLE_TAG", topic_sys_flag=0,
                                                     order=False)})))
    tasks = c.list_rocket_mq_migration_task(ListRocketMqMigrationTaskRequest(instance_id=iid))
    assert [(t.id, t.status, t.type) for t in tasks.task] == [(task.task_id, "finished", "rocketmq")]
    assert c.show_one_topic(ShowOneTopicRequest(instance_id=iid, topic="imported")).total_write_queue_num == 4
    # The same document again without overwrite fails and says why; RabbitMQ definitions (raw
    # HTTP: seed 001's example body) become topics and groups.
    again = server.signed("POST", f"/v2/{server.project_id}/instances/{iid}/metadata",
                          query={"overwrite": "false", "name": "task-again", "type": "rocketmq"},
                          body={"topicConfigTable": {"imported": {"topicName": "imported", "perm": 6}}})
    assert again.status_code == 200
    definitions = {"rabbit_version": "3.8.35", "vhosts": [{"name": "/"}],
                   "queues": [{"name": "test-001", "vhost": "/", "durable": False, "auto_delete": False,
                               "arguments": {}}], "exchanges": [], "bindings": []}
    rabbit = server.signed("POST", f"/v2/{server.project_id}/instances/{iid}/metadata",
                           query={"overwrite": "true", "name": "task-rabbit", "type": "rabbitToRocket"},
                           body=definitions)
    assert rabbit.status_code == 200, rabbit.text
    listed = server.signed("GET", f"/v2/{server.project_id}/instances/{iid}/metadata").json()
    by_name = {t["name"]: t for t in listed["task"]}
    assert by_name["task-again"]["status"] == "failed" and "already exists" in by_name["task-again"]["reason"]
    assert by_name["task-rabbit"]["status"] == "finished"
    assert c.show_group(ShowGroupRequest(instance_id=iid, group="test-001")).name == "test-001"
    gone = server.signed("DELETE", f"/v2/{server.project_id}/instances/{iid}/metadata",
                         body={"taskIds": [by_name["task-again"]["id"]]})
    assert gone.status_code == 200
    deleted = c.batch_delete_rocket_mq_migration_task(BatchDeleteRocketMqMigrationTaskRequest(
        instance_id=iid, body=MetadataDeleteReq(task_ids=[task.task_id])))
    assert deleted.success_task_list == [task.task_id]
    assert [t["name"] for t in server.signed("GET", f"/v2/{server.project_id}/instances/{iid}/metadata")
            .json()["task"]] == ["task-rabbit"]

    # Users need ACL on; the instance switches it live.
    user = User(access_key="app_user1", secret_key="Secret_123", admin=False,
                default_topic_perm="DENY", default_group_perm="DENY")
    assert api_error(lambda: c.create_user(CreateUserRequest(instance_id=iid, body=user)))[1] == "DMS.00400800"
    c.update_instance(UpdateInstanceRequest(instance_id=iid, body=UpdateInstanceReq(enable_acl=True)))
    assert c.show_instance(ShowInstanceRequest(instance_id=iid)).enable_acl is True
    for bad, code in [(dict(access_key="short"), "DMS.00400063"),
                      (dict(secret_key="weakpassword"), "DMS.00400012"),
                      (dict(access_key="Abc_12345", secret_key="54321_cbA"), "DMS.00400012"),
                      (dict(default_topic_perm="ALL"), "DMS.00400063")]:
        fields = {**user.to_dict(), **bad}
        assert api_error(lambda: c.create_user(CreateUserRequest(instance_id=iid, body=User(**fields))))[1] == code
    created = c.create_user(CreateUserRequest(instance_id=iid, body=user))
    assert created.secret_key == "*****" and created.access_key == "app_user1"
    assert c.list_user(ListUserRequest(instance_id=iid)).total == 1

    # Tags through the RocketMQ path.
    c.batch_create_or_delete_rocketmq_tag(BatchCreateOrDeleteRocketmqTagRequest(
        instance_id=iid, body=BatchCreateOrDeleteTagReq(action="create", tags=[TagEntity(key="env", value="test")])))
    assert [(t.key, t.value) for t in c.show_instance(ShowInstanceRequest(instance_id=iid)).tags] == [("env", "test")]

    # Another project's credentials see nothing; a tampered signature is refused.
    other = rocket_client(server, project_id="0" * 32)
    assert api_error(lambda: other.list_rocket_instance_topics(ListRocketInstanceTopicsRequest(
        instance_id=iid))) == (401, "DMS.00401004")
    r = server.signed("POST", f"/v2/{server.project_id}/instances/{iid}/topics", {"name": "tampered"},
                      tamper=lambda b: b.replace(b'"tampered"', b'"changed"'))
    assert (r.status_code, r.json()["error_code"]) == (401, "APIGW.0301"), r.text
    assert "changed" not in {t.name for t in c.list_rocket_instance_topics(
        ListRocketInstanceTopicsRequest(instance_id=iid)).topics}

    # Batch delete through seed 001's body.
    r = c.batch_delete_instances(BatchDeleteInstancesRequest(body=BatchDeleteInstanceReq(
        action="delete", instances=[iid])))
    assert [(x.instance, x.result) for x in r.results] == [(iid, "success")]


def test_messages_traces_dead_letters_offsets_and_verification_on_live_clients(serve_factory, live_clients):
    server = serve_factory()
    c = rocket_client(server)
    iid = create(c, "rocket-msgs", broker_num=2, storage_space=1200)
    show = wait_running(c, iid)
    ns = show.namesrv_address
    c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="live-topic", queue_num=2)))
    c.create_consumer_group_or_batch_delete_consumer_group(CreateConsumerGroupOrBatchDeleteConsumerGroupRequest(
        instance_id=iid, body=CreateConsumerGroupOrBatchDeleteConsumerGroupReq(name="live-group")))
    started = int(time.time() * 1000) - 1000
    live = live_clients(ns, "live-topic", "live-group")
    sent = {f"k{i}": live.send(f"k{i}") for i in range(10)}
    for k in sent:
        live.wait(lambda e, k=k: e["event"] == "received" and e["key"] == k)

    # The messages the client sent, by time range, by offset id and by unique key.
    msgs = c.list_messages(ListMessagesRequest(engine=ENGINE, instance_id=iid, topic="live-topic",
                                               start_time=str(started), end_time=str(int(time.time() * 1000)),
                                               limit=50))
    assert msgs.total == 10
    by_key = {next(p.value for p in m.property_list if p.name == "KEYS"): m for m in msgs.messages}
    assert set(by_key) == set(sent)
    assert by_key["k3"].body == "body of k3" and by_key["k3"].msg_id == sent["k3"]["offsetMsgId"]
    one = c.list_messages(ListMessagesRequest(engine=ENGINE, instance_id=iid, topic="live-topic",
                                              msg_id=sent["k3"]["offsetMsgId"]))
    assert [m.msg_id for m in one.messages] == [sent["k3"]["offsetMsgId"]]
    one = c.list_messages(ListMessagesRequest(engine=ENGINE, instance_id=iid, topic="live-topic",
                                              msg_id=sent["k4"]["msgId"]))
    assert [m.msg_id for m in one.messages] == [sent["k4"]["offsetMsgId"]]
    assert api_error(lambda: c.list_messages(ListMessagesRequest(
        engine=ENGINE, instance_id=iid, topic="live-topic")))[1] == "DMS.00400063"

    # The trace the clients wrote: the send and the consumption of k5.
    deadline = time.monotonic() + 30
    types = set()
    while time.monotonic() < deadline and not {"Pub", "SubBefore", "SubAfter"} <= types:
        trace = c.list_message_trace(ListMessageTraceRequest(engine=ENGINE, instance_id=iid,
                                                             msg_id=sent["k5"]["msgId"])).trace
        types = {t.trace_type for t in trace}
        time.sleep(0.5)
    assert {"Pub", "SubBefore", "SubAfter"} <= types, types
    pub = next(t for t in trace if t.trace_type == "Pub")
    assert (pub.topic, pub.keys, pub.offset_msg_id, pub.group_name) == (
        "live-topic", "k5", sent["k5"]["offsetMsgId"], "pg-live-group")

    # The group's online client, its lag, and consumption verification through it.
    conns = c.show_consumer_connections(ShowConsumerConnectionsRequest(
        instance_id=iid, group="live-group", is_detail=True))
    assert conns.online and [cl.client_id for cl in conns.clients] == [live.client_id]
    assert "live-topic" in {s.topic for s in conns.clients[0].subscriptions}
    before = len(live.received("k6"))
    verified = c.validate_consumed_message(ValidateConsumedMessageRequest(
        engine=ENGINE, instance_id=iid, body=ResendReq(group="live-group", client_id=live.client_id,
                                                       msg_id_list=[sent["k6"]["offsetMsgId"]])))
    assert [(r.msg_id, r.error_code) for r in verified.resend_results] == [(sent["k6"]["offsetMsgId"],
                                                                           "DMS.00000000")]
    assert len(live.received("k6")) > before or live.wait(
        lambda e: e["event"] == "received" and e["key"] == "k6" and live.received("k6").__len__() > before, 10)
    c.create_consumer_group_or_batch_delete_consumer_group(CreateConsumerGroupOrBatchDeleteConsumerGroupRequest(
        instance_id=iid, body=CreateConsumerGroupOrBatchDeleteConsumerGroupReq(name="idle-group")))
    assert api_error(lambda: c.validate_consumed_message(ValidateConsumedMessageRequest(
        engine=ENGINE, instance_id=iid, body=ResendReq(group="idle-group", client_id="x",
                                                       msg_id_list=[sent["k6"]["offsetMsgId"]])))) \
        == (400, "DMS.50050004")

    # Offset reset to before the messages: the live consumer receives every one again.
    reset = c.reset_consume_offset(ResetConsumeOffsetRequest(engine=ENGINE, instance_id=iid, group="live-group",
                                                             body=ResetConsumeOffsetReq(topic="live-topic",
                                                                                        timestamp=started)))
    assert len(reset.queues) == 4 and all(q.timestamp_offset == 0 for q in reset.queues)
    for k in sent:
        live.wait(lambda e, k=k: len(live.received(k)) >= 2, 60)
    assert api_error(lambda: c.reset_consume_offset(ResetConsumeOffsetRequest(
        engine=ENGINE, instance_id=iid, group="live-group",
        body=ResetConsumeOffsetReq(topic="live-topic", timestamp=-5)))) == (400, "DMS.00400142")

    # A message the listener fails goes to %DLQ%live-group; exported, then resent to its
    # topic, where the healed listener consumes it.
    live.command("fail dead-1")
    live.wait(lambda e: e["event"] == "ok")
    dead = live.send("dead-1")
    live.wait(lambda e: e["event"] == "received" and e["key"] == "dead-1")
    # Seed 001 5.4.3, which the SDK lacks: raw HTTP with an IAM token.
    token = server.token().headers["X-Subject-Token"]
    deadline = time.monotonic() + 30
    exported = []
    while time.monotonic() < deadline and not exported:
        r = server.signed("POST", f"/v2/{server.project_id}/instances/{iid}/messages/export",
                          body={"topic": "%DLQ%live-group", "uniq_key_list": [dead["msgId"]]}, token=token)
        assert r.status_code == 200, r.text
        exported = r.json()
        time.sleep(0.5)
    assert len(exported) == 1 and exported[0]["topic"] == "%DLQ%live-group"
    props = {p["name"]: p["value"] for p in exported[0]["property_list"]}
    assert props["RETRY_TOPIC"] == "live-topic" and props["KEYS"] == "dead-1"
    live.command("heal dead-1")
    live.wait(lambda e: e["event"] == "ok")
    resent = c.send_dlq_message(SendDlqMessageRequest(engine=ENGINE, instance_id=iid, body=DeadletterResendReq(
        topic="%DLQ%live-group", msg_id_list=[exported[0]["msg_id"], "C0A80101000027740000000000FFFFFF"])))
    results = [(r.msg_id, r.error_code) for r in resent.resend_results]
    # An id that names no dead letter is refused on its own, as a bad request.
    assert results == [(exported[0]["msg_id"], "DMS.00000000"), ("C0A80101000027740000000000FFFFFF", "DMS.00400800")]
    live.wait(lambda e: len(live.received("dead-1")) >= 2, 60)

    # The SDK's send_message publishes as a producer would; the live consumer gets it.
    out = c.send_message(SendMessageRequest(engine=ENGINE, instance_id=iid, body=SendMessageReq(
        topic="live-topic", body="from the api", property_list=[SendMessageProperties(name="KEYS", value="api-1"),
                                                               SendMessageProperties(name="TAGS", value="t")])))
    assert out.msg_id and out.broker_name in ("broker-0", "broker-1")
    live.wait(lambda e: e["event"] == "received" and e["key"] == "api-1", 60)
    live.close()

    # A restart of opendms serve: topics, groups, offsets and messages are still there.
    server.stop()
    server.start()
    show = wait_running(c, iid)
    assert {t.name for t in c.list_rocket_instance_topics(ListRocketInstanceTopicsRequest(
        instance_id=iid)).topics} == {"live-topic"}
    assert {g.name for g in c.list_instance_consumer_groups(
        ListInstanceConsumerGroupsRequest(instance_id=iid)).groups} == {"live-group", "idle-group"}
    one = c.list_messages(ListMessagesRequest(engine=ENGINE, instance_id=iid, topic="live-topic",
                                              msg_id=sent["k3"]["offsetMsgId"]))
    assert [m.body for m in one.messages] == ["body of k3"]
    lag = c.show_consumer_list_or_details(ShowConsumerListOrDetailsRequest(
        instance_id=iid, group="live-group", topic="live-topic"))
    # k0-k9, dead-1, dead-1 resent, api-1: every one consumed.
    assert sum(q.consumer_offset for b in lag.brokers for q in b.queues) == 13 and lag.lag == 0


def test_acl_users_created_through_the_api_take_effect_in_the_brokers(serve_factory):
    server = serve_factory()
    c = rocket_client(server)
    iid = create(c, "rocket-acl", enable_acl=True)
    show = wait_running(c, iid)
    assert show.enable_acl is True
    c.create_topic_or_batch_delete_topic(CreateTopicOrBatchDeleteTopicRequest(
        instance_id=iid, body=CreateTopicOrBatchDeleteTopicReq(name="guarded", queue_num=2)))
    # No users yet: every client request is refused.
    refused = java("acl-send", show.namesrv_address, "guarded", "nobody_at_all", "Whatever_1", "x")
    assert refused["code"] != 0 and "AclException" in refused["remark"]
    c.create_user(CreateUserRequest(instance_id=iid, body=User(
        access_key="writer_01", secret_key="Writer_pw1", admin=False, default_topic_perm="DENY",
        default_group_perm="DENY", topic_perms=[UserTopicPerms(name="guarded", perm="PUB")],
        group_perms=[UserGroupPerms(name="readers", perm="SUB")])))
    assert java("acl-send", show.namesrv_address, "guarded", "writer_01", "Writer_pw1", "a1")["code"] == 0
    wrong = java("acl-send", show.namesrv_address, "guarded", "writer_01", "Writer_pw2", "a2")
    assert wrong["code"] != 0 and "signature" in wrong["remark"].lower()
    shown = c.show_user(ShowUserRequest(instance_id=iid, user_name="writer_01"))
    assert shown.secret_key == "*****" and [(p.name, p.perm) for p in shown.topic_perms] == [("guarded", "PUB")]
    policy = c.list_topic_access_policy(ListTopicAccessPolicyRequest(instance_id=iid, topic="guarded"))
    assert (policy.total, policy.policies[0].access_key, policy.policies[0].perm) == (1, "writer_01", "PUB")
    gpolicy = c.list_consume_group_access_policy(ListConsumeGroupAccessPolicyRequest(
        engine=ENGINE, instance_id=iid, group="readers"))
    assert [(p.access_key, p.perm) for p in gpolicy.policies] == [("writer_01", "SUB")]

    # The permission removed through the API: the same client is refused at once.
    c.update_user(UpdateUserRequest(instance_id=iid, user_name="writer_01", body=User(
        topic_perms=[UserTopicPerms(name="guarded", perm="SUB")])))
    denied = java("acl-send", show.namesrv_address, "guarded", "writer_01", "Writer_pw1", "a3")
    assert denied["code"] != 0 and "AclException" in denied["remark"]
    # The users are the broker's own file: still there after a restart; ACL off lets anyone in.
    server.stop()
    server.start()
    wait_running(c, iid)
    assert [u.access_key for u in c.list_user(ListUserRequest(instance_id=iid)).users] == ["writer_01"]
    assert java("acl-send", show.namesrv_address, "guarded", "writer_01", "Writer_pw1", "a4")["code"] != 0
    c.update_instance(UpdateInstanceRequest(instance_id=iid, body=UpdateInstanceReq(enable_acl=False)))
    assert java("acl-send", show.namesrv_address, "guarded", "anyone_else", "Whatever_1", "a5")["code"] == 0
    r = c.delete_user(DeleteUserRequest(instance_id=iid, user_name="writer_01"))
    assert r.message
    assert api_error(lambda: c.show_user(ShowUserRequest(instance_id=iid, user_name="writer_01")))[1] \
        == "DMS.00400800"
