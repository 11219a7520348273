"""The Huawei DMS for Kafka API of `opendms serve`, driven by the official SDK
(huaweicloudsdkkafka 3.1.219), by raw signed requests for the paths of seeds 000 and 003
that the SDK no longer has, and by Kafka clients against the brokers the API creates."""

import datetime
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from control_plane import bootstrap
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkafka.v2 import (
    BatchCreateOrDeleteKafkaTagRequest, BatchCreateOrDeleteTagReq, BatchDeleteInstanceTopicReq,
    BatchDeleteInstanceTopicRequest, BatchRestartOrDeleteInstanceReq, BatchRestartOrDeleteInstancesRequest,
    CreateInstanceByEngineReq, CreateInstanceByEngineRequest, CreateInstanceTopicReq, CreateInstanceTopicRequest,
    CreatePostPaidKafkaInstanceRequest, DeleteBackgroundTaskRequest, DeleteInstanceRequest, ListAvailableZonesRequest,
    ListBackgroundTasksRequest, ListEngineProductsRequest, ListInstancesRequest, ListInstanceTopicsRequest,
    ResizeEngineInstanceReq, ResizeKafkaInstanceRequest, ShowBackgroundTaskRequest, ShowInstanceRequest,
    ShowKafkaProjectTagsRequest,
    ShowKafkaTagsRequest, ShowMaintainWindowsRequest, ShowQuotasRequest, TagEntity, UpdateInstanceReq,
    UpdateInstanceRequest, UpdateInstanceTopicReq, UpdateInstanceTopicReqTopics, UpdateInstanceTopicRequest,
)

FLAVOR = "c6.2u4g.cluster"


def create_body(server, name, **overrides):
    zone = server.client().list_available_zones(ListAvailableZonesRequest()).available_zones[0].id
    fields = dict(name=name, engine="kafka", engine_version="3.x", broker_num=3, storage_space=300,
                  vpc_id="vpc-1", security_group_id="sg-1", subnet_id="subnet-1", available_zones=[zone],
                  product_id=FLAVOR, storage_spec_code="dms.physical.storage.ultra.v2", enable_auto_topic=True)
    fields.update(overrides)
    return CreateInstanceByEngineReq(**fields)


def create_instance(server, name, **overrides):
    c = server.client()
    r = c.create_post_paid_kafka_instance(CreatePostPaidKafkaInstanceRequest(body=create_body(server, name, **overrides)))
    return r.instance_id


def produce(bs, topic, n, extra=None, partition=None):
    p = Producer({"bootstrap.servers": bs, **(extra or {})})
    for i in range(n):
        if partition is None:
            p.produce(topic, f"v{i}".encode())
        else:
            p.produce(topic, f"v{i}".encode(), partition=partition)
    assert p.flush(30) == 0


def consume(bs, topic, n, group="g", timeout=30):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    c.close()
    return got


def api_error(call):
    with pytest.raises(ClientRequestException) as e:
        call()
    return e.value.status_code, e.value.error_code


def test_sdk_lifecycle_on_real_brokers(server):
    c = server.client()
    assert len(c.list_available_zones(ListAvailableZonesRequest()).available_zones) == 3
    products = c.list_engine_products(ListEngineProductsRequest(engine="kafka")).products
    assert FLAVOR in [p.product_id for p in products]
    windows = c.show_maintain_windows(ShowMaintainWindowsRequest()).maintain_windows
    assert [w.begin for w in windows if w.default] == ["02:00:00"]

    iid = create_instance(server, "lifecycle-1", tags=[TagEntity(key="team", value="a")])
    show, seen = server.wait_status(iid, "RUNNING")
    assert seen[0] in ("CREATING", "RUNNING")
    assert show.partition_num == "750" and show.storage_space == 300 and show.broker_num == 3
    assert len(show.connect_address.split(",")) == 3
    bs = bootstrap(show)

    created = c.create_instance_topic(CreateInstanceTopicRequest(
        instance_id=iid, body=CreateInstanceTopicReq(id="orders", partition=4, replication=3, retention_time=24)))
    assert created.name == "orders"
    produce(bs, "orders", 100)
    produce(bs, "auto-created", 1)
    topics = c.list_instance_topics(ListInstanceTopicsRequest(instance_id=iid))
    by_name = {t.name: t for t in topics.topics}
    assert by_name["orders"].partition == 4 and by_name["orders"].retention_time == 24
    assert "auto-created" in by_name
    assert topics.max_partitions == 750 and topics.remain_partitions == 750 - 4 - 3

    c.update_instance_topic(UpdateInstanceTopicRequest(instance_id=iid, body=UpdateInstanceTopicReq(topics=[
        UpdateInstanceTopicReqTopics(id="orders", retention_time=48, new_partition_numbers=6)])))
    by_name = {t.name: t for t in c.list_instance_topics(ListInstanceTopicsRequest(instance_id=iid)).topics}
    assert by_name["orders"].partition == 6 and by_name["orders"].retention_time == 48

    deleted = c.batch_delete_instance_topic(BatchDeleteInstanceTopicRequest(
        instance_id=iid, body=BatchDeleteInstanceTopicReq(topics=["auto-created", "no-such-topic"])))
    assert {(t.id, t.success) for t in deleted.topics} == {("auto-created", True), ("no-such-topic", False)}

    c.update_instance(UpdateInstanceRequest(instance_id=iid, body=UpdateInstanceReq(
        name="lifecycle-renamed", description="described", maintain_begin="22:00:00", maintain_end="02:00:00")))
    show = c.show_instance(ShowInstanceRequest(instance_id=iid))
    assert (show.name, show.description, show.maintain_begin) == ("lifecycle-renamed", "described", "22:00:00")

    r = c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(instances=[iid], action="restart")))
    assert [(x.instance, x.result) for x in r.results] == [(iid, "success")]
    server.wait_status(iid, "RUNNING")
    got = consume(bs, "orders", 100)
    assert sorted(got, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(100)]

    job = c.resize_kafka_instance(ResizeKafkaInstanceRequest(
        instance_id=iid, body=ResizeEngineInstanceReq(oper_type="storage", new_storage_space=600))).job_id
    assert job
    show, _ = server.wait_status(iid, "RUNNING")
    for _ in range(50):
        show = c.show_instance(ShowInstanceRequest(instance_id=iid))
        if show.storage_space == 600:
            break
        time.sleep(0.1)
    assert show.storage_space == 600 and show.extend_times == 1
    tasks = c.list_background_tasks(ListBackgroundTasksRequest(instance_id=iid)).tasks
    assert {(t.name, t.status) for t in tasks} >= {("createInstance", "SUCCESS"), ("restartInstance", "SUCCESS"),
                                                  ("extendInstance", "SUCCESS")}
    extend_task = [t for t in tasks if t.name == "extendInstance"][0]
    assert extend_task.id == job and "600" in extend_task.params
    shown = c.show_background_task(ShowBackgroundTaskRequest(instance_id=iid, task_id=job)).tasks
    assert [(t.id, t.status) for t in shown] == [(job, "SUCCESS")]
    c.delete_background_task(DeleteBackgroundTaskRequest(instance_id=iid, task_id=job))
    assert api_error(lambda: c.show_background_task(ShowBackgroundTaskRequest(instance_id=iid, task_id=job)))[0] == 404

    assert [(t.key, t.value) for t in c.show_kafka_tags(ShowKafkaTagsRequest(instance_id=iid)).tags] == [("team", "a")]
    c.batch_create_or_delete_kafka_tag(BatchCreateOrDeleteKafkaTagRequest(instance_id=iid, body=BatchCreateOrDeleteTagReq(
        action="create", tags=[TagEntity(key="env", value="test")])))
    c.batch_create_or_delete_kafka_tag(BatchCreateOrDeleteKafkaTagRequest(instance_id=iid, body=BatchCreateOrDeleteTagReq(
        action="delete", tags=[TagEntity(key="team", value="a")])))
    assert [(t.key, t.value) for t in c.show_kafka_tags(ShowKafkaTagsRequest(instance_id=iid)).tags] == [("env", "test")]
    assert [(t.key, t.values) for t in c.show_kafka_project_tags(ShowKafkaProjectTagsRequest()).tags] == [("env", ["test"])]
    quotas = {q.type: q for q in c.show_quotas(ShowQuotasRequest()).quotas.resources}
    assert quotas["kafka"].used == 1

    c.delete_instance(DeleteInstanceRequest(instance_id=iid))
    server.wait_gone(iid)
    with pytest.raises(KafkaException):
        Consumer({"bootstrap.servers": bs, "group.id": "x", "socket.timeout.ms": 2000}).list_topics(timeout=3)
    assert c.list_instances(ListInstancesRequest()).instance_num == 0


def test_seed_003_and_v1_paths_with_sasl(server):
    zones = server.signed("GET", "/v1.0/availableZones").json()
    zone = zones["available_zones"][0]["id"]
    assert zones["available_zones"][0]["resource_availability"] == "true"
    products = server.signed("GET", "/v1.0/products", query={"engine": "kafka"}).json()
    assert products["Hourly"][0]["values"][0]["detail"][1]["product_id"] == "00300-30310-0--0"
    assert len(server.signed("GET", "/v1.0/instances/maintain-windows").json()["maintain_windows"]) == 6

    body = {"name": "kafka-test", "description": "", "engine": "kafka", "engine_version": "1.1.0",
            "storage_space": 1200, "kafka_manager_user": "root", "kafka_manager_password": "Manager-pw1",
            "vpc_id": "vpc", "security_group_id": "sg", "subnet_id": "subnet", "available_zones": [zone],
            "product_id": "00300-30310-0--0", "maintain_begin": "22:00", "maintain_end": "02:00",
            "ssl_enable": True, "access_user": "app-user", "password": "App-passw0rd",
            "enterprise_project_id": "0", "specification": "300MB", "partition_num": 900,
            "retention_policy": "time_base", "connector_enable": False, "enable_auto_topic": True,
            "storage_spec_code": "dms.physical.storage.ultra", "tags": [{"key": "key1", "value": "value1"}]}
    r = server.signed("POST", f"/v2/{server.project_id}/instances", body)
    assert r.status_code == 200, r.text
    iid = r.json()["instance_id"]
    show, _ = server.wait_status(iid, "RUNNING")
    assert show.ssl_enable is True and show.access_user == "app-user" and show.partition_num == "900"
    bs = bootstrap(show)
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "app-user", "sasl.password": "App-passw0rd"}
    produce(bs, "secure-topic", 10, sasl)
    bad = Producer({"bootstrap.servers": bs, **sasl, "sasl.password": "wrong-password", "message.timeout.ms": 3000})
    outcomes = []
    bad.produce("secure-topic", b"x", on_delivery=lambda err, msg: outcomes.append(err))
    bad.flush(10)
    assert len(outcomes) == 1 and outcomes[0] is not None, "a wrong password must not be able to produce"

    # The same instance through the v1.0 paths of seed 000.
    v1 = server.signed("GET", f"/v1.0/{server.project_id}/instances/{iid}").json()
    assert v1["status"] == "RUNNING" and v1["partition_num"] == "900" and v1["port"] == show.port
    listed = server.signed("GET", f"/v1.0/{server.project_id}/instances",
                           query={"start": 1, "limit": 10, "name": "", "includeFailure": "true"}).json()
    assert listed["instance_num"] == 1 and listed["instances"][0]["instance_id"] == iid
    r = server.signed("POST", f"/v1.0/{server.project_id}/instances/{iid}/topics",
                      {"id": "haha", "partition": 3, "replication": 3, "retention_time": 10,
                       "sync_message_flush": True})
    assert r.status_code == 200 and r.json() == {"id": "haha"}, r.text
    topics = server.signed("GET", f"/v1.0/{server.project_id}/instances/{iid}/topics").json()
    haha = [t for t in topics["topics"] if t["id"] == "haha"][0]
    assert haha == {"id": "haha", "replication": 3, "partition": 3, "retention_time": 10,
                    "sync_replication": False, "sync_message_flush": True}
    r = server.signed("POST", f"/v1.0/{server.project_id}/instances/{iid}/topics/delete", {"topics": ["haha"]})
    assert r.json() == {"topics": [{"id": "haha", "success": True}]}
    r = server.signed("POST", f"/v1.0/{server.project_id}/instances/{iid}/extend", {"new_storage_space": 2400})
    assert r.status_code == 200 and r.json()["job_id"], r.text
    for _ in range(100):
        v1 = server.signed("GET", f"/v1.0/{server.project_id}/instances/{iid}").json()
        if v1["status"] == "RUNNING" and v1["storage_space"] == 2400:
            break
        time.sleep(0.1)
    assert (v1["status"], v1["storage_space"]) == ("RUNNING", 2400)
    r = server.signed("DELETE", f"/v1.0/{server.project_id}/instances/{iid}")
    assert r.status_code == 204
    server.wait_gone(iid)
    r = server.signed("GET", f"/v1.0/{server.project_id}/instances/{iid}")
    assert (r.status_code, r.json()["error_code"]) == (404, "111404022")


def test_validation_errors_change_nothing(server):
    c = server.client()
    create = lambda **o: c.create_post_paid_kafka_instance(  # noqa: E731
        CreatePostPaidKafkaInstanceRequest(body=create_body(server, o.pop("name", "valid-name"), **o)))
    cases = [
        (dict(name="abc"), "DMS.00400010"),
        (dict(maintain_begin="03:00:00", maintain_end="07:00:00"), "DMS.00400106"),
        (dict(maintain_begin="22:00:00"), "DMS.00400106"),
        (dict(storage_space=100), "DMS.00400500"),
        (dict(ssl_enable=True), "DMS.00400015"),
        (dict(ssl_enable=True, access_user="user-1", password="weakpassword"), "DMS.00400012"),
        (dict(available_zones=["a", "b"]), "DMS.00400067"),
        (dict(available_zones=["no-such-az"]), "DMS.00400042"),
        (dict(product_id="nope"), "DMS.00400009"),
        (dict(vpc_id=""), "DMS.00400013"),
        (dict(storage_spec_code="dms.physical.storage.high"), "DMS.00400125"),
        (dict(engine_version="0.8"), "DMS.00400008"),
    ]
    for overrides, code in cases:
        assert api_error(lambda: create(**overrides)) == (400, code), overrides
    # Seed 003's rules on its own path: specification and partition_num go together.
    zone = c.list_available_zones(ListAvailableZonesRequest()).available_zones[0].id
    v2 = {"name": "seed-three", "engine": "kafka", "engine_version": "2.3.0", "storage_space": 600,
          "kafka_manager_user": "root-user", "kafka_manager_password": "Manager-pw1", "vpc_id": "v",
          "security_group_id": "s", "subnet_id": "n", "available_zones": [zone], "product_id": "00300-30308-0--0",
          "specification": "100MB", "partition_num": 900, "storage_spec_code": "dms.physical.storage.high"}
    r = server.signed("POST", f"/v2/{server.project_id}/instances", v2)
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400063"), r.text
    r = server.signed("POST", f"/v1.0/{server.project_id}/instances", {**v2, "partition_num": "300", "storage_space": 500})
    assert (r.status_code, r.json()["error_code"]) == (400, "111400500"), r.text
    # Malformed and mistyped bodies.
    r = server.signed("POST", f"/v2/{server.project_id}/kafka/instances", b"{not json")
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400005")
    r = server.signed("POST", f"/v2/{server.project_id}/kafka/instances", {"name": "x", "storage_space": "abc"})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400063")
    assert "storage_space" in r.json()["error_msg"]
    r = server.signed("POST", f"/v2/{server.project_id}/kafka/instances", b"")
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400004")
    assert c.list_instances(ListInstancesRequest(include_failure="true")).instance_num == 0

    iid = create_instance(server, "valid-name")
    server.wait_status(iid, "RUNNING")
    assert api_error(lambda: create(name="valid-name")) == (400, "DMS.00400060")
    topic = lambda **kw: c.create_instance_topic(  # noqa: E731
        CreateInstanceTopicRequest(instance_id=iid, body=CreateInstanceTopicReq(**kw)))
    # The v2 SDK's limits: names of 3-200 characters, 1-200 partitions, 1-720 hours.
    assert api_error(lambda: topic(id="topic-a", partition=201)) == (400, "DMS.00400102")
    assert api_error(lambda: topic(id="topic-a", replication=4)) == (400, "DMS.00400103")
    assert api_error(lambda: topic(id="topic-a", retention_time=721)) == (400, "DMS.00400105")
    assert api_error(lambda: topic(id="1bad")) == (400, "DMS.00400101")
    assert api_error(lambda: topic(id="ab")) == (400, "DMS.00400101")
    topic(id="topic-a")
    assert api_error(lambda: topic(id="topic-a")) == (400, "DMS.00400800")
    assert [t.name for t in c.list_instance_topics(ListInstanceTopicsRequest(instance_id=iid)).topics] == ["topic-a"]
    missing = "8d2b1f7c-1f0e-4c2a-9d7a-0a1b2c3d4e5f"
    assert api_error(lambda: c.show_instance(ShowInstanceRequest(instance_id=missing))) == (404, "DMS.00404022")
    assert api_error(lambda: c.show_instance(ShowInstanceRequest(instance_id="not-an-id"))) == (400, "DMS.00400061")
    r = server.signed("GET", f"/v2/{server.project_id}/instances", query={"status": "SLEEPING"})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400062")
    r = server.signed("POST", f"/v2/{server.project_id}/instances/action", {"action": "stop", "instances": [iid]})
    assert (r.status_code, r.json()["error_code"]) == (400, "DMS.00400064")
    r = server.signed("PATCH", f"/v2/{server.project_id}/instances")
    assert (r.status_code, r.json()["error_code"]) == (405, "DMS.00405001")
    r = server.signed("GET", "/v2/no/such/path")
    assert (r.status_code, r.json()["error_code"]) == (404, "DMS.00404001")
    assert c.list_instances(ListInstancesRequest()).instance_num == 1


def test_authentication(server):
    path = f"/v2/{server.project_id}/instances"
    assert server.signed("GET", path).status_code == 200
    r = __import__("requests").get(server.url + path, timeout=10)
    assert (r.status_code, r.json()["error_code"]) == (401, "DMS.00401003")
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
    assert server.signed("GET", path, sdk_date=old).status_code == 401
    body = {"id": "topic-x"}
    r = server.signed("POST", path, body, tamper=lambda b: b.replace(b"topic-x", b"topic-y"))
    assert (r.status_code, r.json()["error_code"]) == (401, "APIGW.0301")
    other_project = "%032x" % 12345
    assert api_error(lambda: server.client(project_id=other_project).list_instances(ListInstancesRequest()))[0] in (401, 403)
    assert api_error(lambda: server.client(sk="wrong" * 8).list_instances(ListInstancesRequest()))[0] == 401

    r = server.token()
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    assert r.json()["token"]["project"]["id"] == server.project_id
    assert server.token(project_name="cn-north-4").status_code == 201
    assert server.signed("GET", path, token=token).json()["instance_num"] == 0
    assert server.signed("GET", path, token=token + "x").status_code == 401
    assert server.signed("GET", f"/v2/{other_project}/instances", token=token).status_code == 401
    bad = server.token()
    server.password = "wrong"
    assert server.token().status_code == 401 and bad.status_code == 201
    projects = server.signed("GET", "/v3/projects", query={"name": "cn-north-4"}).json()["projects"]
    assert [p["id"] for p in projects] == [server.project_id]

    # Given a region and no project id, the SDK looks the project up at /v3/projects itself.
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.region.region import Region
    from huaweicloudsdkkafka.v2 import KafkaClient
    regional = (KafkaClient.new_builder()
                .with_credentials(BasicCredentials(server.ak, server.sk).with_iam_endpoint(server.url))
                .with_region(Region("cn-north-4", server.url)).build())
    assert regional.list_instances(ListInstancesRequest()).instance_num == 0


def test_restart_of_the_server_keeps_instances_topics_and_offsets(serve_factory):
    server = serve_factory()
    c = server.client()
    iid = create_instance(server, "durable-1")
    show, _ = server.wait_status(iid, "RUNNING")
    c.create_instance_topic(CreateInstanceTopicRequest(instance_id=iid, body=CreateInstanceTopicReq(id="events", partition=1)))
    bs = bootstrap(show)
    produce(bs, "events", 100, partition=0)
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "resume"})
    consumer.commit(offsets=[TopicPartition("events", 0, 50)], asynchronous=False)
    consumer.close()

    server.stop()
    server.start()
    again, _ = server.wait_status(iid, "RUNNING")
    assert again.connect_address == show.connect_address
    assert [t.name for t in c.list_instance_topics(ListInstanceTopicsRequest(instance_id=iid)).topics] == ["events"]
    got = consume(bs, "events", 50, group="resume")
    assert got == [f"v{i}" for i in range(50, 100)]


def test_generated_credentials_and_where_they_are_kept(serve_factory):
    unset = ("OPENDMS_ACCESS_KEY", "OPENDMS_SECRET_KEY", "OPENDMS_PROJECT_ID", "OPENDMS_DOMAIN",
             "OPENDMS_USER", "OPENDMS_PASSWORD")
    server = serve_factory("generated", unset=unset)
    kept = server.data_dir / "credentials.json"
    saved = json.loads(kept.read_text())
    first = server.stdout_lines
    assert f"generated credentials are kept in {kept}" in first, first
    assert f"access key: {saved['access_key']}" in first and f"secret key: {saved['secret_key']}" in first
    assert f"project id: {saved['project_id']}" in first and f"password: {saved['password']}" in first
    server.stop()
    server.start()
    again = server.stdout_lines
    assert f"credentials generated at the first start are in {kept}" in again, again
    assert not any(line.startswith(("secret key:", "password:")) for line in again), again
    # The kept credentials are the ones the server accepts.
    server.ak, server.sk, server.project_id = saved["access_key"], saved["secret_key"], saved["project_id"]
    assert server.client().list_instances(ListInstancesRequest()).instance_num == 0


def test_lifecycle_controls(server):
    c = server.client()
    r = server.signed("PUT", "/opendms/admin/lifecycle", {"create": {"delay_reads": 3}})
    assert r.status_code == 200 and r.json()["create"]["delay_reads"] == 3
    iid = create_instance(server, "slow-one")
    time.sleep(0.5)  # the brokers are up well before the reads run out
    statuses = [c.show_instance(ShowInstanceRequest(instance_id=iid)).status for _ in range(4)]
    assert statuses == ["CREATING", "CREATING", "CREATING", "RUNNING"]
    # Busy instances refuse other operations.
    server.signed("PUT", "/opendms/admin/lifecycle", {"restart": {"delay_reads": 2}})
    c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(instances=[iid], action="restart")))
    assert api_error(lambda: c.resize_kafka_instance(ResizeKafkaInstanceRequest(
        instance_id=iid, body=ResizeEngineInstanceReq(oper_type="storage", new_storage_space=600)))) == (400, "DMS.00400026")
    server.wait_status(iid, "RUNNING")

    server.signed("PUT", "/opendms/admin/lifecycle", {"create": {"fail_next": True}, "restart": {"fail_next": True}})
    failed = create_instance(server, "doomed-one")
    show, _ = server.wait_status(failed, "CREATEFAILED")
    assert server.signed("GET", "/opendms/admin/lifecycle").json()["create"]["fail_next"] is False
    assert c.list_instances(ListInstancesRequest()).instance_num == 1
    assert c.list_instances(ListInstancesRequest(include_failure="true")).instance_num == 2

    c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(instances=[iid], action="restart")))
    server.wait_status(iid, "RUNNING")
    tasks = c.list_background_tasks(ListBackgroundTasksRequest(instance_id=iid)).tasks
    assert ("restartInstance", "FAILED") in {(t.name, t.status) for t in tasks}

    r = c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(action="delete", all_failure="kafka")))
    assert r.status_code == 204
    server.wait_gone(failed)
    assert c.list_instances(ListInstancesRequest(include_failure="true")).instance_num == 1


def test_health_metrics_and_openapi(server):
    import requests
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    server.client().list_instances(ListInstancesRequest())
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'opendms_http_requests_total{operation="list_instances",status="200"} 1' in metrics
    assert 'opendms_instances{status="RUNNING"} 0' in metrics
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    assert "post" in doc["paths"]["/v2/{project_id}/kafka/instances"]
    assert "get" in doc["paths"]["/v1.0/{project_id}/instances/{instance_id}"]


def test_no_free_address_ends_createfailed_and_batch_delete(serve_factory):
    # Room for one three-broker instance only.
    server = serve_factory(env={"OPENDMS_BROKER_IP_POOL_SIZE": "4"})
    c = server.client()
    first = c.create_instance_by_engine(CreateInstanceByEngineRequest(
        engine="kafka", body=create_body(server, "first-one"))).instance_id
    server.wait_status(first, "RUNNING")
    second = create_instance(server, "second-one")
    show, _ = server.wait_status(second, "CREATEFAILED")
    r = server.signed("GET", f"/v2/{server.project_id}/instances/{second}").json()
    assert "no free broker addresses" in r["status_reason"]
    tasks = c.list_background_tasks(ListBackgroundTasksRequest(instance_id=second)).tasks
    assert [(t.name, t.status) for t in tasks] == [("createInstance", "FAILED")]
    r = c.batch_restart_or_delete_instances(BatchRestartOrDeleteInstancesRequest(
        body=BatchRestartOrDeleteInstanceReq(instances=[first, second], action="delete")))
    assert sorted((x.instance, x.result) for x in r.results) == sorted([(first, "success"), (second, "success")])
    server.wait_gone(first)
    server.wait_gone(second)
    # The addresses are free again.
    third = create_instance(server, "third-one")
    server.wait_status(third, "RUNNING")


def test_bad_http_input_is_refused_and_changes_nothing(server):
    import random

    import requests
    base = f"/v2/{server.project_id}"
    iid = create_instance(server, "survivor")
    server.wait_status(iid, "RUNNING")
    routes = [("POST", f"{base}/kafka/instances"), ("POST", f"{base}/instances"), ("POST", f"{base}/instances/action"),
              ("PUT", f"{base}/instances/{iid}"), ("POST", f"{base}/instances/{iid}/topics"),
              ("PUT", f"{base}/instances/{iid}/topics"), ("POST", f"{base}/instances/{iid}/topics/delete"),
              ("POST", f"{base}/kafka/instances/{iid}/extend"), ("POST", f"{base}/kafka/{iid}/tags/action"),
              ("PUT", "/opendms/admin/lifecycle"), ("POST", f"/v1.0/{server.project_id}/instances")]
    rng = random.Random(7)
    bodies = [b"\x00\xff" * 10, b"[]", b"null", b"123", b'"text"', b'{"name": {"nested": []}}', b"{" * 1000,
              bytes(rng.randrange(256) for _ in range(300)), json.dumps({"topics": [1, 2]}).encode(),
              json.dumps({"action": "restart", "instances": "not-a-list"}).encode()]
    for method, path in routes:
        for body in bodies:
            r = server.signed(method, path, body)
            if r.status_code == 204 and path.endswith(iid) and body.startswith(b'{"'):
                continue  # an update naming no field it knows changes nothing (unknown fields are ignored)
            assert 400 <= r.status_code < 500, (method, path, body, r.status_code, r.text)
            assert r.json()["error_code"], r.text
    big = b'{"name": "' + b"x" * (13 * 1024 * 1024) + b'"}'
    r = requests.post(server.url + f"{base}/kafka/instances", data=big, timeout=60,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # Nothing changed, and the server still answers.
    c = server.client()
    listed = c.list_instances(ListInstancesRequest(include_failure="true"))
    assert [(i.name, i.status) for i in listed.instances] == [("survivor", "RUNNING")]
    assert [t.name for t in c.list_instance_topics(ListInstanceTopicsRequest(instance_id=iid)).topics] == []
