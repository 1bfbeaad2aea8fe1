"""The quicker boto3 session: the same models and the same clients as boto3's own."""
from __future__ import annotations

import boto3
import botocore.loaders
import pytest
from botocore.exceptions import UnknownServiceError

from migrator.store.boto_session import quick_session


def _loaders():
    quick = quick_session()._session.get_component("data_loader")
    return quick, botocore.loaders.Loader()


@pytest.mark.parametrize("type_name", ["service-2", "endpoint-rule-set-1"])
def test_the_quick_loader_reads_the_same_s3_model_in_the_same_order(type_name):
    quick, plain = _loaders()
    got = quick.load_service_model("s3", type_name)
    want = plain.load_service_model("s3", type_name)
    assert got == want
    if type_name == "service-2":
        assert list(got["shapes"]) == list(want["shapes"])
        assert list(got["operations"]) == list(want["operations"])


def test_the_quick_loader_knows_the_same_services():
    quick, plain = _loaders()
    services = quick.list_available_services("service-2")
    assert "s3" in services and "route53" in services
    assert "no-such-service" not in services and "../s3" not in services and "" not in services
    assert list(services) == plain.list_available_services("service-2")
    with pytest.raises(UnknownServiceError):
        quick_session(region_name="us-east-1").client("no-such-service")


def test_a_quick_client_is_boto3s_client():
    options = {"region_name": "eu-west-1", "aws_access_key_id": "AKIDEXAMPLE",
               "aws_secret_access_key": "not-a-real-secret"}
    quick = quick_session(**options).client("s3")
    plain = boto3.session.Session(**options).client("s3")
    assert quick.meta.endpoint_url == plain.meta.endpoint_url
    assert quick.meta.service_model.operation_names == plain.meta.service_model.operation_names
    url = {"ClientMethod": "get_object", "Params": {"Bucket": "b", "Key": "k"}}
    assert (quick.generate_presigned_url(**url).split("?")[0]
            == plain.generate_presigned_url(**url).split("?")[0])
