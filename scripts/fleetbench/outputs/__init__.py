"""The output store benchmark (scripts/bench_outputs.py): Redis memory per completed job and
the time a large output adds, with outputs in Redis, a shared folder or S3."""
