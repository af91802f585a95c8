"""The queue commands of ``fleetq``: submit, status, jobs, stats, cancel, bump, retry, pause,
resume, drain, undrain, fault, clear-health, refresh-capabilities, tenant-weight. Each goes
through :class:`fleetq.Client`, like the dashboard."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from fleetq.cli import render
from fleetq.cli.parsing import ascii_int, non_negative_int, positive_int, seconds
from fleetq.client import Client
from fleetq.errors import InvalidArgument, InvalidWorkflow, JobCancelled, JobFailed
from fleetq.identity import marked_targets, operator_identity
from fleetq.inputs import inputs_from_args
from fleetq.model import JobState, JobStatus
from fleetq.validation import check_host_target, check_service


def _who() -> str:
    """Who acts, recorded with each operator action: ``cli:user@host``."""
    return operator_identity("cli")


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


def _requires(args: argparse.Namespace) -> dict[str, Any] | None:
    """Explicit requirements from ``--require-label`` and ``--min-vram-gb`` (checked, with
    the rest, by the client)."""
    requires: dict[str, Any] = {}
    labels = {}
    for pair in args.require_label or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--require-label takes KEY=VALUE, not {pair!r}")
        labels[key.strip()] = value.strip()
    if labels:
        requires["labels"] = labels
    if args.min_vram_gb is not None:
        requires["min_vram_gb"] = args.min_vram_gb
    return requires or None


def _gigabytes(raw: str) -> float:
    try:
        return float(raw)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of GB") from e


def _looks_like_a1111(workflow: Any) -> bool:
    """An A1111 txt2img/img2img body: a flat object with a text prompt (a ComfyUI graph maps
    node ids to node objects)."""
    return isinstance(workflow, dict) and isinstance(workflow.get("prompt"), str)


def _hint(error: JobFailed) -> str:
    """What to do about a failure a newcomer meets on the demo's fake backends."""
    if "not in list" in str(error).lower():
        return ("; a model or file the workflow names is not on the backend (the demo's fake "
                "ComfyUI has no checkpoints: try examples/fake_comfyui_quick.json)")  # fmt: skip
    return ""


def submit(client: Client, args: argparse.Namespace) -> int:
    workflow = _read_workflow(args.file)
    try:
        job = client.submit(
            workflow,
            service=args.service,
            priority=args.priority,
            max_attempts=args.max_attempts,
            timeout_s=args.timeout,
            metadata=_metadata(args.meta),
            idempotency_key=args.idempotency_key,
            requires=_requires(args),
            require_schedulable=args.require_schedulable,
            inputs=inputs_from_args(args.input),
            tenant=args.tenant,
        )
    except InvalidWorkflow as e:
        if args.service == "comfyui" and _looks_like_a1111(workflow):
            raise InvalidWorkflow(f"{e} (an A1111 body? add --service a1111)") from e
        raise
    if not args.wait:
        status = job.status()
        if args.json:
            render.print_json({"id": job.id, "state": status.state, "position": status.position})
        else:
            print(job.id)
        return 0
    if not args.json:
        print(job.id, flush=True)  # first, so a script reading stdout has it at once
    bar = None if args.json else render.ProgressBar()
    try:
        result = job.wait(
            timeout_s=args.wait_timeout,
            on_progress=bar.update if bar else None,
            previews=False,  # a text progress bar shows no image: never read one
        )
    except (JobFailed, JobCancelled) as e:
        if bar:
            bar.close()
        if args.json:
            render.print_json(job.status())
        if isinstance(e, JobFailed) and _hint(e):
            raise JobFailed(job.id, f"{e.error.describe()}{_hint(e)}") from e
        raise
    if bar:
        bar.finish(job.status())
    saved = result.save(args.out) if args.out else []
    if args.json:
        render.print_json({"id": job.id, "state": "completed", "outputs": [
            {"filename": o.filename, "content_type": o.content_type, "size": len(o.data)}
            for o in result.outputs
        ], "saved": [str(p) for p in saved]})  # fmt: skip
    else:
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
    if args.preview is not None:
        return _write_preview(client, st, args.preview)
    return 0


def _write_preview(client: Client, st: JobStatus, path: str) -> int:
    """``status --preview FILE``: the latest live preview into FILE (said on stderr, so
    ``--json`` output stays JSON); exits 1 with the reason when there is none."""
    preview = client.preview(st.id)
    if preview is None:
        why = (
            "it is not running"
            if st.state is not JobState.RUNNING
            else "its backend sent none yet, or the last one expired (ComfyUI sends previews "
            "only with --preview-method; A1111 only with live previews on)"
        )
        print(f"fleetq: no live preview of job {st.id}: {why}", file=sys.stderr)
        return 1
    try:
        preview.save(path)
    except OSError as e:
        raise InvalidArgument(f"cannot write the preview to {path}: {e.strerror}") from e
    print(
        f"preview of job {st.id} written to {path} ({preview.content_type}, "
        f"{len(preview.data)} bytes)",
        file=sys.stderr,
    )
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
        render.stats_table(st, who=client.changed_by(marked_targets(st)))
    _note_empty_namespace(client)
    return 0


def tenant_weight(client: Client, args: argparse.Namespace) -> int:
    if args.weight is not None:
        client.set_tenant_weight(args.tenant, args.weight)
    weights = client.tenant_weights()
    if args.tenant is not None:
        weight = weights.get(args.tenant, 1.0)
        return _report(args, f"tenant {args.tenant}: weight {weight:g}",
                       tenant=args.tenant, weight=weight)  # fmt: skip
    if args.json:
        render.print_json(weights)
    elif weights:
        render.table(["TENANT", "WEIGHT"], [[name, f"{w:g}"] for name, w in weights.items()])
    else:
        print("every tenant has the default weight, 1")
    return 0


def _report(args: argparse.Namespace, text: str, **fields: Any) -> int:
    """An action's outcome: ``text`` for a person, ``fields`` with ``--json``."""
    if args.json:
        render.print_json(fields)
    else:
        print(text)
    return 0


def cancel(client: Client, args: argparse.Namespace) -> int:
    outcome = client.cancel(args.job_id, by=_who())
    if outcome == "cancelled":
        text = f"cancelled {args.job_id}"
    else:
        text = f"cancelling {args.job_id}: its GPU was told to interrupt it"
    return _report(args, text, id=args.job_id, outcome=outcome)


def bump(client: Client, args: argparse.Namespace) -> int:
    position = client.bump(args.job_id, args.priority, by=_who())
    where = (
        "waiting for its retry" if position is None else f"now at position {position} (0 = next)"
    )
    return _report(args, f"{args.job_id} priority {args.priority}, {where}",
                   id=args.job_id, priority=args.priority, position=position)  # fmt: skip


def retry(client: Client, args: argparse.Namespace) -> int:
    position = client.retry(args.job_id, by=_who())
    where = "waiting for its backoff" if position is None else f"at position {position} (0 = next)"
    return _report(args, f"requeued {args.job_id} {where}",
                   id=args.job_id, position=position)  # fmt: skip


def pause(client: Client, args: argparse.Namespace) -> int:
    service = check_service(args.service, client.settings)
    changed = client.pause(service, by=_who())
    text = f"paused {service}" if changed else f"{service} was already paused"
    return _report(args, text, service=service, paused=True, changed=changed)


def resume(client: Client, args: argparse.Namespace) -> int:
    service = check_service(args.service, client.settings)
    changed = client.resume(service, by=_who())
    text = f"resumed {service}" if changed else f"{service} was not paused"
    return _report(args, text, service=service, paused=False, changed=changed)


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
    indices = {g.index for g in host.gpus}
    if gpu.isascii() and gpu.isdigit() and host.online and host.gpus and int(gpu) not in indices:
        known = ", ".join(str(i) for i in sorted(indices))
        raise InvalidArgument(f"host {name!r} has no GPU {gpu} (its GPUs: {known})")


def drain(client: Client, args: argparse.Namespace) -> int:
    _check_known_target(client, args.target)
    changed = client.drain(args.target, by=_who())
    text = f"drained {args.target}" if changed else f"{args.target} was already drained"
    return _report(args, text, target=args.target, drained=True, changed=changed)


def undrain(client: Client, args: argparse.Namespace) -> int:
    changed = client.undrain(args.target, by=_who())
    text = f"undrained {args.target}" if changed else f"{args.target} was not drained"
    return _report(args, text, target=args.target, drained=False, changed=changed)


def fault(client: Client, args: argparse.Namespace) -> int:
    command = {"type": "fault", "gpu": args.gpu, "spec": args.spec}
    client.send_control(args.host, command, by=_who())
    text = f"sent fault {args.spec!r} to {args.host}:{args.gpu} (simulated GPUs only)"
    return _report(args, text, host=args.host, gpu=args.gpu, sent={"fault": args.spec})


def refresh_capabilities(client: Client, args: argparse.Namespace) -> int:
    command: dict[str, Any] = {"type": "refresh-capabilities"}
    if args.gpu is not None:
        command["gpu"] = args.gpu
    client.send_control(args.host, command)
    which = "every GPU" if args.gpu is None else f"GPU {args.gpu}"
    text = f"asked {args.host} to read the capabilities of {which} again"
    return _report(args, text, host=args.host, gpu=args.gpu, sent="refresh-capabilities")


def clear_health(client: Client, args: argparse.Namespace) -> int:
    client.send_control(args.host, {"type": "clear-health", "gpu": args.gpu}, by=_who())
    text = f"asked {args.host} to clear the sticky health findings of GPU {args.gpu}"
    return _report(args, text, host=args.host, gpu=args.gpu, sent="clear-health")


JOB_ID_HELP = "a job id (16 hex digits, as submit printed it)"
SERVICE_HELP = "a service queue: comfyui, a1111 or one of $FLEETQ_SERVICES"
HOST_HELP = "a supervisor's host id (its --host-id, by default its hostname)"
GPU_HELP = "the GPU's index on that host"


def add_parsers(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register the queue commands on the ``fleetq`` sub-command parser; each takes the
    ``parents`` options (``--redis``, ``--namespace``, ``--json``)."""

    def command(name: str, text: str, description: str | None = None) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name,
            parents=parents,
            help=text,
            description=description or text[0].upper() + text[1:] + ".",
        )
        return parser

    p = command(
        "submit",
        "submit a workflow (JSON file or -)",
        "Submit a workflow and print its job id (with --wait: follow it to the end and "
        "save its outputs). The workflow is the backend's native request: a ComfyUI "
        "API-format graph, or an A1111 txt2img/img2img body with --service a1111.",
    )
    p.add_argument("file", help="workflow JSON file, or - for standard input")
    p.add_argument(
        "--service",
        default="comfyui",
        help="target service: comfyui (default), a1111, or one of $FLEETQ_SERVICES",
    )
    p.add_argument(
        "--priority",
        type=ascii_int,
        default=0,
        metavar="N",
        help="-1000..1000, higher runs first (default 0)",
    )
    p.add_argument(
        "--max-attempts",
        type=ascii_int,
        default=None,
        metavar="N",
        help="attempts charged for faults of the job (default $FLEETQ_DEFAULT_MAX_ATTEMPTS or 3)",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        metavar="S",
        help="job timeout in seconds (default $FLEETQ_DEFAULT_TIMEOUT_S or 900)",
    )
    p.add_argument(
        "--meta",
        action="append",
        metavar="KEY=VALUE",
        help="metadata stored with the job (repeatable)",
    )
    p.add_argument(
        "--tenant",
        default=None,
        metavar="NAME",
        help="who the job is for: fair share within a priority is between tenants "
        "(default: the tenant metadata key, else 'default')",
    )
    p.add_argument(
        "--idempotency-key",
        default=None,
        metavar="KEY",
        help="submitting again with the same key returns the same job",
    )
    p.add_argument(
        "--require-label",
        action="append",
        metavar="KEY=VALUE",
        help="only a GPU whose supervisor carries this --label runs it (repeatable)",
    )
    p.add_argument(
        "--min-vram-gb",
        type=_gigabytes,
        default=None,
        metavar="GB",
        help="only a GPU with at least this much memory runs it",
    )
    p.add_argument(
        "--require-schedulable",
        action="store_true",
        help="refuse (submitting nothing) a job no live GPU can run now, saying why",
    )
    p.add_argument(
        "--input",
        action="append",
        metavar="NAME=PATH",
        help="attach a file the workflow names (a LoadImage image, an A1111 init image); "
        "a bare PATH keeps its file name (repeatable)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="print the id, then wait for the result with a progress bar",
    )
    p.add_argument(
        "--wait-timeout",
        type=seconds,
        default=None,
        metavar="S",
        help="with --wait: give up waiting after S seconds (the job goes on)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="with --wait: save outputs here")
    p.set_defaults(handler=submit)

    p = command("status", "show one job: state, position, progress, attempts, GPU, error")
    p.add_argument("job_id", help=JOB_ID_HELP)
    p.add_argument(
        "--preview",
        default=None,
        metavar="FILE",
        help="also write the running job's latest live preview image to FILE",
    )
    p.set_defaults(handler=status)

    p = command("jobs", "list jobs (one bounded page, priority then age)")
    p.add_argument(
        "--state",
        default="queued",
        choices=["queued", "running", "completed", "failed", "cancelled"],
        help="which jobs (default queued)",
    )
    p.add_argument("--service", default=None, help="only this service's jobs")
    p.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="at most N jobs (default 50)"
    )
    p.set_defaults(handler=jobs)

    p = command(
        "stats", "queue counts per service (queued, running, rates, oldest wait) and per tenant"
    )
    p.set_defaults(handler=stats)

    p = command(
        "tenant-weight",
        "show or set the fair-share weight of tenants",
        "Show or set a tenant's fair-share weight (default 1): within one priority, tenants "
        "with queued jobs are served in proportion to their weights. It applies to jobs "
        "submitted after the change. Without arguments: every weight other than 1.",
    )
    p.add_argument("tenant", nargs="?", default=None, help="the tenant's name")
    p.add_argument(
        "weight", nargs="?", default=None, help="the new weight, 0.1..1000 (1 is the default)"
    )
    p.set_defaults(handler=tenant_weight)

    for name, handler, text in (
        ("cancel", cancel, "cancel a job (queued: removed; running: interrupted on its GPU)"),
        ("retry", retry, "requeue a failed or cancelled job"),
    ):
        p = command(name, text)
        p.add_argument("job_id", help=JOB_ID_HELP)
        p.set_defaults(handler=handler)

    p = command("bump", "change the priority of a queued job")
    p.add_argument("job_id", help=JOB_ID_HELP)
    p.add_argument("priority", type=ascii_int, help="the new priority, -1000..1000")
    p.set_defaults(handler=bump)

    for name, handler, text in (
        ("pause", pause, "stop claims from a service queue (its jobs stay queued)"),
        ("resume", resume, "resume a paused service queue"),
    ):
        p = command(name, text)
        p.add_argument("service", help=SERVICE_HELP)
        p.set_defaults(handler=handler)

    for name, handler, text in (
        ("drain", drain, "stop claims on a machine (HOST) or one GPU (HOST:GPU)"),
        ("undrain", undrain, "resume claims on a machine (HOST) or one GPU (HOST:GPU)"),
    ):
        p = command(name, text)
        p.add_argument(
            "target", metavar="HOST[:GPU]", help="a registered host id, optionally with a GPU index"
        )
        p.set_defaults(handler=handler)

    p = command("fault", "inject a fault into a simulated GPU (supervisor --simulate-gpus)")
    p.add_argument("host", help=HOST_HELP)
    p.add_argument("gpu", type=non_negative_int, help=GPU_HELP)
    p.add_argument("spec", help="xid=79, temp=95, ecc, lost, mem-free=1024, or clear")
    p.set_defaults(handler=fault)

    p = command("clear-health", "forget a GPU's sticky findings (critical XID, ECC) after a reset")
    p.add_argument("host", help=HOST_HELP)
    p.add_argument("gpu", type=non_negative_int, help=GPU_HELP)
    p.set_defaults(handler=clear_health)

    p = command(
        "refresh-capabilities",
        "make a supervisor read its backends' models and nodes again now",
        "Make a supervisor read its backends' capabilities (models, node classes) again now, "
        "instead of at its next periodic refresh: after adding or removing model files.",
    )
    p.add_argument("host", help=HOST_HELP)
    p.add_argument(
        "gpu",
        type=non_negative_int,
        nargs="?",
        default=None,
        help=GPU_HELP + " (default: every GPU)",
    )
    p.set_defaults(handler=refresh_capabilities)
