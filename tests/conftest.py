"""Shared fixtures: a real moto S3 server over HTTP on 127.0.0.1, temp repositories."""
from __future__ import annotations

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def moto_server():
    """A moto S3 server on loopback for the whole session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(moto_server, monkeypatch):
    """Standard AWS environment pointing at the moto server (what a user would set)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def s3_bucket(s3_env):
    """A fresh, empty bucket on the moto server; yields its name."""
    import boto3

    name = "lvc-" + uuid.uuid4().hex[:12]
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.create_bucket(Bucket=name)
    yield name


@pytest.fixture(autouse=True)
def _deterministic_identity(monkeypatch):
    monkeypatch.setenv("LINDIVC_AUTHOR", "Test User <test@example.org>")


@pytest.fixture
def github_standin():
    """A stand-in GitHub API (`GET /user`) on loopback knowing tokens tok-alice and tok-bob."""
    from github_standin import GitHubStandin

    with GitHubStandin({"tok-alice": "alice", "tok-bob": "bob"}) as gh:
        yield gh


@pytest.fixture
def gateway(s3_bucket, github_standin):
    """A lindivc gateway (uvicorn, loopback) over a fresh moto bucket; yields its base URL.
    Tokens: tok-alice (alice), tok-bob (bob); login cache TTL 1 s."""
    from lindivc.server.app import BackgroundServer, create_app

    app = create_app(s3_bucket, endpoint_url=os.environ["AWS_ENDPOINT_URL"], github_api_url=github_standin.url,
                     cache_ttl=1.0, negative_ttl=0.5)
    with BackgroundServer(app) as srv:
        yield srv.url
