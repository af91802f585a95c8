"""Output stores through the client faces: store URLs checked where they are set, the sync
client reading from a folder and from S3, records checked against the bytes, retention of the
shared folder."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fleetq import Client, Settings
from fleetq.errors import InvalidArgument, OutputsExpired, OutputStoreError
from fleetq.model import Output
from fleetq.outputs.files import FileOutputs, slot_s
from fleetq.outputs.location import file_path, parse_store_url, s3_object
from fleetq.worker import WorkerQueue
from supervisor.config import load_config
from tests.s3server import s3_client

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must be redis, file:///absolute/folder or s3://bucket/prefix"),
        ("ftp://host/x", "must be redis, file:///absolute/folder or s3://bucket/prefix"),
        ("file://relative/path", "must name an absolute folder"),
        ("file:///", "refusing the root folder"),
        ("s3://", "must name a bucket"),
        ("s3://Upper_Case/x", "must name a bucket"),
        ("s3://bucket/a/../b", "empty or dot segment"),
        ("s3://bucket/x?endpoint=http://h", "FLEETQ_S3_ENDPOINT_URL"),
    ],
)
def test_bad_store_urls_are_refused_with_what_to_fix(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("?", r"\?")):
        Settings(output_store=url)
    with pytest.raises(InvalidArgument, match="output store"):
        Settings.from_env({"FLEETQ_OUTPUT_STORE": url or " "})


def test_store_urls_parse() -> None:
    assert parse_store_url("redis").kind == "redis"
    assert parse_store_url("file:///mnt/shared/fleetq/").root == "/mnt/shared/fleetq"
    s3 = parse_store_url("s3://my-bucket/fleet/outputs/")
    assert (s3.kind, s3.root, s3.prefix) == ("s3", "my-bucket", "fleet/outputs")
    assert s3_object("s3://b-1/p/x/0-a.png") == ("b-1", "p/x/0-a.png")


def test_the_store_comes_from_toml_and_flags(tmp_path: Path) -> None:
    toml = tmp_path / "supervisor.toml"
    backends = '[backends]\ncomfyui = "http://127.0.0.1:8188"\n'
    toml.write_text('output_store = "file:///srv/fleetq"\ns3_region = "eu-west-1"\n' + backends)
    config = load_config(Settings(), config_file=str(toml), env={})
    assert (config.settings.output_store, config.settings.s3_region) == (
        "file:///srv/fleetq", "eu-west-1",
    )  # fmt: skip
    flagged = load_config(
        Settings(), config_file=str(toml), env={}, output_store="s3://b-1/x"
    ).settings
    assert flagged.output_store == "s3://b-1/x"
    toml.write_text('output_store = "nfs://srv/x"\n' + backends)
    with pytest.raises(InvalidArgument, match="output store"):
        load_config(Settings(), config_file=str(toml), env={})


def test_the_cli_refuses_a_bad_store_before_doing_anything() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "--output-store", "file:relative", "stats"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "must name an absolute folder" in done.stderr


async def claim(worker: WorkerQueue) -> Any:
    outcome = await worker.try_claim(["comfyui"], "h", 0)
    assert outcome.job is not None
    return outcome.job


async def complete_one(settings: Settings, graph: dict[str, Any]) -> tuple[Client, str]:
    client = Client(settings)
    job = client.submit(graph)
    worker = WorkerQueue(settings)
    try:
        await worker.complete(await claim(worker), [Output("img.png", "image/png", PNG)])
    finally:
        await worker.aclose()
    return client, job.id


async def test_the_sync_client_reads_the_shared_folder_and_checks_the_record(
    file_settings: Settings, graph: dict[str, Any], tmp_path: Path
) -> None:
    client, job_id = await complete_one(file_settings, graph)
    with client:
        result = client.result(job_id)
        assert result.outputs[0].data == PNG
        assert result.files[0].sha256 == hashlib.sha256(PNG).hexdigest()
        [saved] = result.save(tmp_path / "saved")
        assert saved.read_bytes() == PNG
        path = file_path(result.urls()[0])
        path.write_bytes(PNG[:100])  # cut short behind fleetq's back
        with pytest.raises(OutputStoreError, match="does not match its record"):
            client.result(job_id)
        path.unlink()
        with pytest.raises(OutputsExpired):
            client.result(job_id)


async def test_the_sync_client_reads_s3_and_presigns(
    s3_settings: Settings, s3_endpoint: str, graph: dict[str, Any]
) -> None:
    client, job_id = await complete_one(s3_settings, graph)
    with client:
        result = client.result(job_id)
        assert result.outputs[0].data == PNG
        [url] = result.urls()
        assert url.startswith(s3_endpoint) and "X-Amz-Signature=" in url
        bucket, key = s3_object(result.files[0].location)
        s3_client(s3_endpoint).delete_object(Bucket=bucket, Key=key)  # a lifecycle rule ran
        with pytest.raises(OutputsExpired):
            client.result(job_id)


async def test_expired_folders_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    ttl_s = 48
    store = FileOutputs(tmp_path, "ns", ttl_s)
    assert store.slot_s == slot_s(ttl_s) == 2
    stored = await store.store("job1", 1, [Output("a.png", "image/png", PNG)])
    path = file_path(stored.files[0].location)
    assert path.read_bytes() == PNG
    assert not list(path.parent.glob("*.part"))  # written under a temporary name, renamed
    now = time.time()
    assert await store.sweep(now) == 0
    assert path.exists()
    assert await store.sweep(now + ttl_s + store.slot_s + 1) == 1
    assert not path.exists()
    assert await store.sweep(now + 10 * ttl_s) == 0
