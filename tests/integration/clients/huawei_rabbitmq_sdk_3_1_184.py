"""huaweicloudsdkrabbitmq 3.1.184 through a RabbitMQ instance's life, run by
test_rabbitmq_api.py with .venv/sdk-3.1.184 in front of the path (the pinned latest SDK is
in .venv itself). Arguments: endpoint, AK, SK, project id. Exits non-zero on a failed check."""

import sys
import time

import pika
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServiceResponseException
from huaweicloudsdkrabbitmq.v2 import (
    CreateInstanceReq, CreatePostPaidInstanceRequest, CreateVhostBody, CreateVhostRequest, DeleteInstanceRequest,
    ListAvailableZonesRequest, ListInstancesDetailsRequest, ListPluginsRequest, ListProductsRequest,
    ListVhostsRequest, RabbitMQClient, ResetPasswordReq, ResetPasswordRequest, ResizeInstanceReq,
    ResizeInstanceRequest, ShowInstanceExtendProductInfoRequest, ShowInstanceRequest, UpdatePluginsReq,
    UpdatePluginsRequest,
)
import huaweicloudsdkrabbitmq

endpoint, ak, sk, project = sys.argv[1:5]
assert "sdk-3.1.184" in huaweicloudsdkrabbitmq.__file__, huaweicloudsdkrabbitmq.__file__
c = RabbitMQClient.new_builder().with_credentials(BasicCredentials(ak, sk, project)).with_endpoint(endpoint).build()


def wait(iid, want):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = c.show_instance(ShowInstanceRequest(instance_id=iid))
        if s.status == want:
            return s
        time.sleep(0.05)
    raise AssertionError(f"{iid} never {want}")


zone = c.list_available_zones(ListAvailableZonesRequest()).available_zones[0].id
# The old product family (`GET /v2/products`), by billing mode.
old = c.list_products(ListProductsRequest(engine="rabbitmq"))
hourly = {v.name: [d.product_id for d in v.detail] for v in old.hourly[0].values}
assert hourly["single"][0] == "00300-30109-0--0" and len(hourly["cluster"]) == 9, hourly
iid = c.create_post_paid_instance(CreatePostPaidInstanceRequest(body=CreateInstanceReq(
    name="rabbit-184", engine="rabbitmq", engine_version="3.8.35", storage_space=100,
    access_user="old-sdk", password="Old-Sdk-Pw1", vpc_id="vpc-1", security_group_id="sg-1",
    subnet_id="subnet-1", available_zones=[zone], product_id="c6.2u4g.single",
    storage_spec_code="dms.physical.storage.ultra.v2"))).instance_id
show = wait(iid, "RUNNING")
assert (show.engine, show.port, show.type) == ("rabbitmq", 5672, "single"), show
listed = c.list_instances_details(ListInstancesDetailsRequest(engine="rabbitmq"))
assert [i.instance_id for i in listed.instances] == [iid], listed

c.reset_password(ResetPasswordRequest(instance_id=iid, body=ResetPasswordReq(new_password="Newer-Pw-184")))
conn = pika.BlockingConnection(pika.ConnectionParameters(show.connect_address, show.port, "/",
                               pika.PlainCredentials("old-sdk", "Newer-Pw-184"), heartbeat=0))
conn.close()
c.update_plugins(UpdatePluginsRequest(instance_id=iid, body=UpdatePluginsReq(
    enable=True, plugins="rabbitmq_consistent_hash_exchange")))
plugins = {p.name: p.enable for p in c.list_plugins(ListPluginsRequest(instance_id=iid)).plugins}
assert plugins["rabbitmq_consistent_hash_exchange"] is True, plugins

c.create_vhost(CreateVhostRequest(instance_id=iid, body=CreateVhostBody(name="old")))
assert [v.name for v in c.list_vhosts(ListVhostsRequest(instance_id=iid)).items] == ["/", "old"]

try:
    c.show_instance_extend_product_info(ShowInstanceExtendProductInfoRequest(instance_id=iid, engine="rabbitmq"))
    raise AssertionError("show_instance_extend_product_info answered")
except ServiceResponseException as e:
    assert (e.status_code, e.error_code) == (501, "DMS.00501001"), e
c.resize_instance(ResizeInstanceRequest(instance_id=iid, body=ResizeInstanceReq(new_storage_space=200)))
deadline = time.monotonic() + 30
while (s := c.show_instance(ShowInstanceRequest(instance_id=iid))).status != "RUNNING" or s.storage_space != 200:
    assert time.monotonic() < deadline, s.status
    time.sleep(0.05)

c.delete_instance(DeleteInstanceRequest(instance_id=iid))
deadline = time.monotonic() + 30
while True:
    try:
        c.show_instance(ShowInstanceRequest(instance_id=iid))
    except ClientRequestException as e:
        assert (e.status_code, e.error_code) == (404, "DMS.00404022"), e
        break
    assert time.monotonic() < deadline
    time.sleep(0.05)
print("ok")
