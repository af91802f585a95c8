"""The ``s3://`` output store: S3-compatible object storage (AWS, MinIO, Ceph, R2).

Writes use aiobotocore (botocore's own signing and retries, on aiohttp, which the supervisor
already runs on); reads and presigned URLs use botocore itself, which aiobotocore depends on, so
the synchronous client needs no event loop. Both come with the ``s3`` extra.

Keys: ``<prefix>/<namespace>/<job>/claim-<n>/<index>-<name>``. A PutObject appears whole or not
at all, so an upload cut by a crash leaves nothing readable; a claim that never completes leaves
an orphan that no record names. S3 removes expired outputs itself through a lifecycle rule on the
prefix (the README gives one); fleetq never lists a bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from fleetq.config import Settings
from fleetq.errors import InvalidArgument, OutputsExpired, OutputStoreError
from fleetq.model import Output, OutputFile
from fleetq.outputs.base import OutputWriter, StoredOutputs, object_name, record
from fleetq.outputs.location import StoreUrl, s3_object

#: Not finding these means the object is gone (expired by the bucket's lifecycle rule).
_MISSING = {"NoSuchKey", "404", "NotFound"}


def _client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "connect_timeout": 5,
        "read_timeout": 60,
        "retries": {"max_attempts": 3, "mode": "standard"},
        # SigV4 everywhere (presigned URLs too): the only signature newer regions accept.
        "signature_version": "s3v4",
    }
    if settings.s3_endpoint_url:
        # MinIO, Ceph and most self-hosted servers want path-style addressing.
        options["s3"] = {"addressing_style": "path"}
    return options


def _client_args(settings: Settings) -> dict[str, Any]:
    return {
        "endpoint_url": settings.s3_endpoint_url or None,
        "region_name": settings.s3_region or None,
    }


def _missing_extra(e: ImportError) -> InvalidArgument:
    return InvalidArgument(
        f"the s3:// output store needs the s3 extra: pip install 'fleetq[s3]' ({e})"
    )


class S3Outputs(OutputWriter):
    """Uploads outputs with aiobotocore; one client for the supervisor's lifetime."""

    kind = "s3"

    def __init__(self, url: StoreUrl, settings: Settings) -> None:
        try:
            import aiobotocore.session  # noqa: F401 (fail at start, not at the first upload)
        except ImportError as e:
            raise _missing_extra(e) from e
        self.bucket = url.root
        self.prefix = "/".join(part for part in (url.prefix, settings.namespace) if part)
        self.settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(**_client_options(self.settings))
            creating = get_session().create_client(
                "s3", config=config, **_client_args(self.settings)
            )
            self._client = await self._stack.enter_async_context(creating)
        return self._client

    async def check(self) -> None:
        try:
            await (await self._s3()).head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise OutputStoreError(
                f"output store s3://{self.bucket} cannot be reached or used: {_reason(e)} "
                "(FLEETQ_OUTPUT_STORE, FLEETQ_S3_ENDPOINT_URL, AWS credentials)"
            ) from e

    async def store(self, job_id: str, claim: int, outputs: Sequence[Output]) -> StoredOutputs:
        client = await self._s3()
        files = []
        for index, output in enumerate(outputs):
            key = f"{self.prefix}/{object_name(job_id, claim, index, output.filename)}"
            rec = record(output, f"s3://{self.bucket}/{key}")
            try:
                await client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=output.data,
                    ContentType=output.content_type or "application/octet-stream",
                    Metadata={"sha256": rec.sha256},
                )
            except Exception as e:
                raise OutputStoreError(
                    f"cannot upload output to s3://{self.bucket}/{key}: {_reason(e)}"
                ) from e
            files.append(rec)
        return StoredOutputs(tuple(files))

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None


class S3Reader:
    """Reads outputs and presigns URLs with a (thread-safe) botocore client."""

    def __init__(self, settings: Settings) -> None:
        try:
            import botocore.config
            import botocore.session
        except ImportError as e:
            raise _missing_extra(e) from e
        config = botocore.config.Config(**_client_options(settings))
        self.client = botocore.session.get_session().create_client(
            "s3", config=config, **_client_args(settings)
        )
        self.url_ttl_s = settings.output_url_ttl_s

    def read(self, job_id: str, file: OutputFile) -> bytes:
        bucket, key = s3_object(file.location)
        try:
            answer = self.client.get_object(Bucket=bucket, Key=key)
            with contextlib.closing(answer["Body"]) as body:
                data: bytes = body.read()
        except Exception as e:
            if _code(e) in _MISSING:
                raise OutputsExpired(
                    f"the outputs of job {job_id} have expired (removed from s3://{bucket})"
                ) from e
            raise OutputStoreError(f"cannot read {file.location}: {_reason(e)}") from e
        check_digest(file, data)
        return data

    def url(self, file: OutputFile) -> str:
        bucket, key = s3_object(file.location)
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=self.url_ttl_s
        )
        return url


def check_digest(file: OutputFile, data: bytes) -> None:
    """Refuse bytes that do not match their record (a truncated or replaced file)."""
    if file.sha256 and hashlib.sha256(data).hexdigest() != file.sha256:
        raise OutputStoreError(
            f"{file.location} does not match its record (sha256 differs): it was changed or cut"
        )


def _code(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _reason(e: BaseException) -> str:
    code = _code(e)
    return f"{code}: {e}" if code else f"{type(e).__name__}: {e}"
