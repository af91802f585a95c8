"""The queue commands of ``fleetq``: submit, status, jobs, stats, cancel, bump, retry, pause,
resume, drain, undrain, fault. Each goes through :class:`fleetq.Client`, like the dashboard."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from fleetq.cli import render
from fleetq.client import Client
from fleetq.errors import InvalidArgument, InvalidWorkflow, JobCancelled, JobFailed
from fleetq.validation import check_host_target, check_service


def _now_ms() -> int:
    return int(time.time() * 1000)


def _read_workflow(path: str) -> Any:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise InvalidWorkflow(f"{path} is not UTF-8 text") from e
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InvalidWorkflow(f"{path} is not valid JSON: {e}") from e
    except RecursionError as e:
        raise InvalidWorkflow(f"{path} is nested too deeply") from e


def _metadata(pairs: list[str] | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--meta takes KEY=VALUE, not {pair!r}")
        meta[key] = value
    return meta


def submit(client: Client, args: argparse.Namespace) -> int:
    job = client.submit(
        _read_workflow(args.file),
        service=args.service,
        priority=args.priority,
        max_attempts=args.max_attempts,
        timeout_s=args.timeout,
        metadata=_metadata(args.meta),
        idempotency_key=args.idempotency_key,
    )
    if not args.wait:
        status = job.status()
        if args.json:
            render.print_json({"id": job.id, "state": status.state, "position": status.position})
        else:
            print(job.id)
        return 0
    bar = None if args.json else render.ProgressBar()
    try:
        result = job.wait(timeout_s=args.wait_timeout, on_progress=bar.update if bar else None)
    except (JobFailed, JobCancelled):
        if bar:
            bar.close()
        if args.json:
            render.print_json(job.status())
        raise
    if bar:
        bar.close()
    saved = result.save(args.out) if args.out else []
    if args.json:
        render.print_json({"id": job.id, "state": "completed", "outputs": [
            {"filename": o.filename, "content_type": o.content_type, "size": len(o.data)}
            for o in result.outputs
        ], "saved": [str(p) for p in saved]})  # fmt: skip
    else:
        print(job.id)
        for path in saved:
            print(f"saved {path}")
        if not args.out:
            for output in result.outputs:
                print(f"output {output.filename} ({len(output.data)} bytes; --out DIR saves it)")
    return 0


def status(client: Client, args: argparse.Namespace) -> int:
    st = client.status(args.job_id)
    if args.json:
        render.print_json(st)
    else:
        print("\n".join(render.status_lines(st, _now_ms())))
    return 0


def jobs(client: Client, args: argparse.Namespace) -> int:
    if args.service:
        check_service(args.service, client.settings)
    rows = client.jobs(state=args.state, service=args.service, limit=args.limit)
    if args.json:
        render.print_json(rows)
    elif rows:
        render.jobs_table(rows, _now_ms())
    else:
        print(f"no {args.state} jobs")
    return 0


def _note_empty_namespace(client: Client) -> None:
    """A namespace no supervisor ever used is most often the wrong one: say so (on stderr)."""
    if not client.fleet().hosts:
        namespace = client.settings.namespace
        print(f"note: no supervisor has ever registered in namespace {namespace!r} "
              f"(set --namespace or FLEETQ_NAMESPACE; the demo uses 'demo')",
              file=sys.stderr)  # fmt: skip


def stats(client: Client, args: argparse.Namespace) -> int:
    st = client.stats()
    if args.json:
        render.print_json(st)
    else:
        render.stats_table(st)
    _note_empty_namespace(client)
    return 0


def cancel(client: Client, args: argparse.Namespace) -> int:
    outcome = client.cancel(args.job_id, by="cli")
    if outcome == "cancelled":
        print(f"cancelled {args.job_id}")
    else:
        print(f"cancelling {args.job_id}: its GPU was told to interrupt it")
    return 0


def bump(client: Client, args: argparse.Namespace) -> int:
    position = client.bump(args.job_id, args.priority)
    where = "waiting for its retry" if position is None else f"now at position {position}"
    print(f"{args.job_id} priority {args.priority}, {where}")
    return 0


def retry(client: Client, args: argparse.Namespace) -> int:
    position = client.retry(args.job_id)
    print(f"requeued {args.job_id} at position {position}")
    return 0


def pause(client: Client, args: argparse.Namespace) -> int:
    service = check_service(args.service, client.settings)
    changed = client.pause(service)
    print(f"paused {service}" if changed else f"{service} was already paused")
    return 0


def resume(client: Client, args: argparse.Namespace) -> int:
    service = check_service(args.service, client.settings)
    changed = client.resume(service)
    print(f"resumed {service}" if changed else f"{service} was not paused")
    return 0


def _check_known_target(client: Client, target: str) -> None:
    """Refuse a drain target no supervisor of this namespace has registered: a typo would
    otherwise answer "drained" and stop nothing."""
    check_host_target(target)
    name, _, gpu = target.partition(":")
    host = client.fleet().host(name)
    namespace = client.settings.namespace
    if host is None:
        raise InvalidArgument(
            f"no supervisor has ever registered as host {name!r} in namespace {namespace!r}"
        )
    indices = {g.get("index") for g in host.gpus}
    if gpu.isascii() and gpu.isdigit() and host.online and host.gpus and int(gpu) not in indices:
        known = ", ".join(str(i) for i in sorted(i for i in indices if isinstance(i, int)))
        raise InvalidArgument(f"host {name!r} has no GPU {gpu} (its GPUs: {known})")


def drain(client: Client, args: argparse.Namespace) -> int:
    _check_known_target(client, args.target)
    changed = client.drain(args.target)
    print(f"drained {args.target}" if changed else f"{args.target} was already drained")
    return 0


def undrain(client: Client, args: argparse.Namespace) -> int:
    changed = client.undrain(args.target)
    print(f"undrained {args.target}" if changed else f"{args.target} was not drained")
    return 0


def fault(client: Client, args: argparse.Namespace) -> int:
    client.send_control(args.host, {"type": "fault", "gpu": args.gpu, "spec": args.spec})
    print(f"sent fault {args.spec!r} to {args.host}:{args.gpu} (simulated GPUs only)")
    return 0


def clear_health(client: Client, args: argparse.Namespace) -> int:
    client.send_control(args.host, {"type": "clear-health", "gpu": args.gpu})
    print(f"asked {args.host} to clear the sticky health findings of GPU {args.gpu}")
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the queue commands on the ``fleetq`` sub-command parser."""
    p = sub.add_parser("submit", parents=[common], help="submit a workflow (JSON file or -)")
    p.add_argument("file", help="workflow JSON: ComfyUI API format or an A1111 request body")
    p.add_argument("--service", default="comfyui", help="target service (default comfyui)")
    p.add_argument("--priority", type=int, default=0, help="-1000..1000, higher runs first")
    p.add_argument("--max-attempts", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="job timeout in seconds")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata (repeatable)")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--wait", action="store_true", help="wait for the result, with progress")
    p.add_argument("--wait-timeout", type=float, default=None, metavar="S")
    p.add_argument("--out", default=None, metavar="DIR", help="with --wait: save outputs here")
    p.set_defaults(handler=submit)

    p = sub.add_parser("status", parents=[common], help="show one job")
    p.add_argument("job_id")
    p.set_defaults(handler=status)

    p = sub.add_parser("jobs", parents=[common], help="list jobs (one bounded page)")
    p.add_argument("--state", default="queued",
                   choices=["queued", "running", "completed", "failed", "cancelled"])  # fmt: skip
    p.add_argument("--service", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(handler=jobs)

    p = sub.add_parser("stats", parents=[common], help="queue counts per service")
    p.set_defaults(handler=stats)

    for name, handler, text in (
        ("cancel", cancel, "cancel a job (queued: removed; running: interrupted on its GPU)"),
        ("retry", retry, "requeue a failed or cancelled job"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("job_id")
        p.set_defaults(handler=handler)

    p = sub.add_parser("bump", parents=[common], help="change the priority of a queued job")
    p.add_argument("job_id")
    p.add_argument("priority", type=int)
    p.set_defaults(handler=bump)

    for name, handler, text in (
        ("pause", pause, "stop claims from a service queue"),
        ("resume", resume, "resume a paused service queue"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("service")
        p.set_defaults(handler=handler)

    for name, handler, text in (
        ("drain", drain, "stop claims on HOST or HOST:GPU"),
        ("undrain", undrain, "resume claims on HOST or HOST:GPU"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("target", metavar="HOST[:GPU]")
        p.set_defaults(handler=handler)

    p = sub.add_parser("fault", parents=[common], help="inject a fault into a simulated GPU")
    p.add_argument("host")
    p.add_argument("gpu", type=int)
    p.add_argument("spec", help="xid=79, temp=95, ecc, lost, mem-free=1024, clear")
    p.set_defaults(handler=fault)

    text = "forget a GPU's sticky findings (critical XID, ECC) after a reset"
    p = sub.add_parser("clear-health", parents=[common], help=text)
    p.add_argument("host")
    p.add_argument("gpu", type=int)
    p.set_defaults(handler=clear_health)
