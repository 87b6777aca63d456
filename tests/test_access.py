"""Zones a user may list but not read, or reaches with no credentials at all: clone says so in
one line (never "holds no published history"), exit status 1, nothing created. A gateway whose
--public-url is down: push names that URL, not the gateway, which answered. S3 is moto over
HTTP; read permissions are moto's own: its IAM simulation and the ACL of private objects."""
from __future__ import annotations

import json
import os

import boto3
import pytest
from click.testing import CliRunner

from lindivc.cli import cli

CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                   "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


def _invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _one_line_error(res, *words):
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for w in words:
        assert w in lines[0], lines[0]
    assert "no published history" not in lines[0]


@pytest.fixture
def published(s3_bucket, tmp_path, monkeypatch):
    """A zone s3://BUCKET/zones/ada/acg with one pushed commit; yields its URL."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert _invoke("init").exit_code == 0
    (work / "a.lindi.json").write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}}}))
    assert _invoke("add", "a.lindi.json").exit_code == 0
    assert _invoke("commit", "-m", "one").exit_code == 0
    url = f"s3://{s3_bucket}/zones/ada/acg"
    assert _invoke("remote", "add", "origin", url).exit_code == 0
    res = _invoke("push")
    assert res.exit_code == 0, res.output
    monkeypatch.chdir(tmp_path)
    return url


def test_clone_without_any_credentials_says_so(published, tmp_path, monkeypatch):
    for var in CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # moto lets anyone list the bucket, and refuses anonymous reads of its private objects
    _one_line_error(_invoke("clone", published, str(tmp_path / "c")), published, "no AWS credentials found")
    assert not (tmp_path / "c").exists()


def test_clone_where_listing_is_allowed_but_reads_are_denied(published, tmp_path, monkeypatch, s3_env):
    from moto.core.authorization import enable_iam_authentication

    iam = boto3.client("iam", endpoint_url=s3_env, region_name="us-east-1")
    user = f"lister-{os.getpid()}-{tmp_path.name}"[:60]
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="list-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    with enable_iam_authentication():  # moto now checks every request against the user's policy
        res = _invoke("clone", published, str(tmp_path / "c"))
    _one_line_error(res, published, "access denied (AccessDenied)")
    assert not (tmp_path / "c").exists()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_read_through_a_gateway_whose_public_url_is_down_names_that_url(s3_bucket, github_standin, tmp_path,
                                                                           monkeypatch):
    """A push needs no read of the public URL (it writes, and reads refs and lists through the
    gateway's API); a fetch reads history there, and its error names that URL."""
    from lindivc.server.app import BackgroundServer, create_app

    port = _closed_port()
    public = f"http://127.0.0.1:{port}/pub"  # where the gateway redirects reads: nothing listens there
    app = create_app(s3_bucket, endpoint_url=os.environ["AWS_ENDPOINT_URL"], github_api_url=github_standin.url,
                     public_url=public)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_TOKEN", "tok-alice")
    assert _invoke("init").exit_code == 0
    (tmp_path / "a.lindi.json").write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}}}))
    assert _invoke("add", "a.lindi.json").exit_code == 0
    assert _invoke("commit", "-m", "one").exit_code == 0
    with BackgroundServer(app) as gw:
        assert _invoke("remote", "add", "origin", f"{gw.url}/zones/alice/x").exit_code == 0
        assert _invoke("push").exit_code == 0
        res = _invoke("fetch")
    _one_line_error(res, f"cannot read {public}/zones/alice/x/", f"connection refused by 127.0.0.1:{port}",
                    f"the gateway of {gw.url}/zones/alice/x redirected there")
    assert "cannot reach gateway" not in res.output
    assert res.exit_code == 1


def test_a_gateway_that_does_not_answer_is_named_as_such(tmp_path):
    from lindivc.errors import RedirectUnreachable, ZoneUnreachable
    from lindivc.zones.gateway import GatewayZone

    port = _closed_port()
    zone = GatewayZone(f"http://127.0.0.1:{port}/zones/ada/acg", token="tok")
    for call in (lambda: zone.get("git/HEAD"), lambda: list(zone.list("idx/")), zone.now):
        with pytest.raises(ZoneUnreachable) as e:
            call()
        assert not isinstance(e.value, RedirectUnreachable)
        assert str(e.value) == (f"http://127.0.0.1:{port}/zones/ada/acg: cannot reach gateway 127.0.0.1:{port} "
                                f"(connection refused by 127.0.0.1:{port})")
