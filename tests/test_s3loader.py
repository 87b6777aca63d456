"""lindivc.zones.s3loader: botocore's model files read faster, the same client out of them."""
from __future__ import annotations

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from lindivc.errors import PreconditionFailed, ZoneKeyMissing
from lindivc.zones.s3 import S3Zone, make_client
from lindivc.zones.s3loader import KnownServices, ZoneDataLoader, data_loader


def test_models_are_botocore_own():
    ours, theirs = data_loader(), Loader()
    for kind in ("service-2", "endpoint-rule-set-1"):
        assert ours.load_service_model("s3", kind) == theirs.load_service_model("s3", kind)
    for name in ("endpoints", "partitions", "_retry", "sdk-default-configuration"):
        assert ours.load_data(name) == theirs.load_data(name)


def test_known_services_answer_as_botocore_list():
    ours, theirs = data_loader(), Loader()
    known = ours.list_available_services("service-2")
    assert isinstance(known, KnownServices)
    assert "s3" in known and "sts" in known
    for bad in ("no-such-service", "", ".", "..", "s3/2006-03-01", "../data", None, 3):
        assert bad not in known
    assert list(known) == theirs.list_available_services("service-2")
    assert len(known) > 100


def test_unknown_service_is_botocore_error():
    with pytest.raises(UnknownServiceError):
        data_loader().load_service_model("no-such-service", "service-2")


def test_aws_data_path_is_searched_first(tmp_path):
    d = tmp_path / "models"
    (d / "s3" / "2006-03-01").mkdir(parents=True)
    (d / "s3" / "2006-03-01" / "waiters-2.json").write_text('{"version": 2, "waiters": {"Mine": {}}}')
    loader = data_loader(f"{d}")
    assert loader.load_service_model("s3", "waiters-2") == {"version": 2, "waiters": {"Mine": {}}}
    assert Loader().load_service_model("s3", "waiters-2") != loader.load_service_model("s3", "waiters-2")


def test_zone_client_uses_the_loader_and_works_on_moto(s3_bucket, s3_env):
    """Every kind of request a zone makes, parsed by the models this loader read (errors too)."""
    client = make_client()
    assert isinstance(client._loader, ZoneDataLoader)
    z = S3Zone(f"s3://{s3_bucket}/p", client=client)
    etag = z.put("f/a.json", b"hello", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        z.put("f/a.json", b"again", if_none_match=True)
    z.put("f/a.json", b"hello!", if_match=etag)
    assert z.get("f/a.json") == b"hello!"
    assert z.get_range("f/a.json", 1, 3) == b"ell"
    assert z.head("f/a.json").size == 6
    assert [i.key for i in z.list("f/")] == ["f/a.json"]
    z.delete("f/a.json")
    assert list(z.list("f/")) == []
    with pytest.raises(ZoneKeyMissing):
        z.get("f/a.json")
