"""The output store: where the files a job produced are kept.

Chosen by URL (``Settings.output_store``, ``FLEETQ_OUTPUT_STORE``, ``output_store`` in TOML,
``--output-store``), the same on supervisors and clients:

- ``redis`` (the default): the bytes live in Redis next to the job, for small fleets and the demo;
- ``file:///mnt/shared/fleetq``: a folder every supervisor and client mounts at the same path;
- ``s3://bucket/prefix``: S3-compatible object storage (AWS, MinIO, Ceph, R2), with
  ``s3_endpoint_url`` and ``s3_region`` settings and credentials from the usual AWS environment
  variables or config files. Needs the ``s3`` extra (``pip install 'fleetq[s3]'``).

Whatever the store, Redis keeps one small record per output (:class:`fleetq.model.OutputFile`:
name, content type, size, sha256 and location), and readers fetch the bytes from the location the
record names. Writers live in :mod:`fleetq.outputs.writers`, readers in
:mod:`fleetq.outputs.readers`; the S3 library is imported only where an ``s3://`` store is used.
"""

from fleetq.outputs.location import StoreUrl, parse_store_url

__all__ = ["StoreUrl", "parse_store_url"]
