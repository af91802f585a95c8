"""What the checks read besides Redis: the outputs' PNG bytes, the fakes' execution logs and the
supervisors' logs."""

from __future__ import annotations

import collections
import json
import re
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from fleetbench.chaos.fakes import tag_of
from fleetbench.chaos.options import EVERYSEC_WINDOW_S, PNG_SIGNATURE
from fleetbench.chaos.workload import JobPlan

# -- the checks ------------------------------------------------------------------------------


def verify_png(data: bytes, plan: JobPlan) -> str | None:
    """None when ``data`` is a well-formed PNG of ``plan``'s size and colour whose embedded
    prompt carries ``plan``'s tag; otherwise what is wrong."""
    if not data.startswith(PNG_SIGNATURE):
        return "no PNG signature"
    pos, idat, header, text = len(PNG_SIGNATURE), [], b"", {}
    while pos < len(data):
        if pos + 12 > len(data):
            return "truncated chunk"
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            return f"truncated {kind!r} chunk"
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"bad CRC in {kind!r}"
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\x00")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IEND":
            break
    if pos != len(data):
        return "bytes after IEND"
    if len(header) != 13:
        return "no IHDR"
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    if (width, height, depth, colour_type) != (plan.width, plan.height, 8, 2):
        return (
            f"IHDR {width}x{height} depth {depth} type {colour_type}, expected "
            f"{plan.width}x{plan.height} RGB8"
        )
    try:
        pixels = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        return f"IDAT does not inflate: {e}"
    rgb = bytes(((plan.color >> 16) & 0xFF, (plan.color >> 8) & 0xFF, plan.color & 0xFF))
    if pixels != (b"\x00" + rgb * width) * height:
        return "pixels are not the job's colour"
    try:
        tag = tag_of(json.loads(text.get("prompt", "")))
    except ValueError:
        tag = None
    if tag != plan.index:
        return f"embedded prompt has tag {tag}, expected {plan.index}"
    return None


@dataclass
class Execution:
    port: int
    prompt: str
    outcome: str
    files: list[str]
    started: int | None
    ended: int


def read_executions(
    workdir: Path,
) -> tuple[dict[int, list[Execution]], collections.Counter[str], dict[int, set[str]]]:
    """Per tag, every prompt a fake executed to its end; counts; per port, the prompts done."""
    by_tag: dict[int, list[Execution]] = collections.defaultdict(list)
    counts: collections.Counter[str] = collections.Counter()
    done: dict[int, set[str]] = collections.defaultdict(set)
    for path in sorted(workdir.glob("executions-*.jsonl")):
        starts: dict[str, int] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["e"] == "start":
                starts[record["prompt"]] = record["t"]
            elif record["e"] == "done":
                counts["exec_total"] += 1
                counts[f"exec_{record['outcome']}"] += 1
                done[record["port"]].add(record["prompt"])
                if record["tag"] is not None:
                    by_tag[record["tag"]].append(
                        Execution(
                            record["port"],
                            record["prompt"],
                            record["outcome"],
                            record["files"],
                            starts.get(record["prompt"]),
                            record["t"],
                        )
                    )
            elif record["e"] == "restart":
                counts["exec_dropped"] += len(record["dropped"])
    return by_tag, counts, done


def _hgetall_many(r: redis.Redis, keys: Sequence[str]) -> list[dict[bytes, bytes]]:
    out: list[dict[bytes, bytes]] = []
    for i in range(0, len(keys), 500):
        pipe = r.pipeline(transaction=False)
        for key in keys[i : i + 500]:
            pipe.hgetall(key)
        out.extend(pipe.execute())
    return out


def _within_window(at: float, kills: Sequence[float]) -> float | None:
    """Seconds between ``at`` and the first Redis crash after it, if inside the window."""
    for killed in kills:
        if 0 <= killed - at <= EVERYSEC_WINDOW_S:
            return killed - at
    return None


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


@dataclass
class SupervisorLogs:
    #: Puller runs that ended ``lost``: a renew or a final write refused as stale.
    refusals: int = 0
    #: job id -> (host:gpu, time) of each "job ... completed on ..." line: a supervisor whose
    #: completion Redis accepted.
    completions: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO supervisor\.execution: "
    r"job ([0-9a-f]+) (completed|lost) on (\S+) after "
)


def read_supervisor_logs(workdir: Path) -> SupervisorLogs:
    logs = SupervisorLogs()
    for path in sorted(workdir.glob("supervisor-*.log")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                match = _LOG_LINE.match(line)
                if match is None:
                    continue
                stamp, millis, job_id, outcome, where = match.groups()
                if outcome == "lost":
                    logs.refusals += 1
                    continue
                at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
                logs.completions.setdefault(job_id, []).append((where, at))
    return logs
