"""A real S3 API server on loopback (moto's standalone server) for the S3 output store tests:
``from tests.s3server import s3_endpoint, s3_settings``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from moto.server import ThreadedMotoServer

from fleetq import Settings
from fleetq.demo.processes import consecutive_free_ports

#: Any credentials do for moto; botocore refuses to sign without some.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "fleetq-test",
    "AWS_SECRET_ACCESS_KEY": "fleetq-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3 server started for the session on a free loopback port."""
    port = consecutive_free_ports(1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    session = botocore.session.Session()
    return session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's settings with outputs in a fresh bucket of the session's S3 server."""
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = "fleetq-" + uuid.uuid4().hex[:12]
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    return settings.with_overrides(
        output_store=f"s3://{bucket}/outputs", s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
    )
