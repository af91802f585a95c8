"""The checks after a chaos run: nothing lost, no stale write accepted, outputs intact,
attempts charged only for the job's own faults, and a clean key space after retention."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Mapping
from typing import Any, cast

import redis
from key_audit import audit_keys, live_jobs

from fleetbench.chaos.evidence import (
    Execution,
    _hgetall_many,
    _text,
    _within_window,
    read_executions,
    read_supervisor_logs,
    verify_png,
)
from fleetbench.chaos.options import (
    CLOCK_SLACK_MS,
    GATE_REACTION_MS,
    SERVICE,
    TERMINAL,
    ZOMBIE_HOST,
    ChaosReport,
)
from fleetbench.chaos.run import ChaosRun
from fleetbench.chaos.state import Accepted
from fleetq import Settings
from fleetq.keys import Keys
from fleetq.store import SyncStore


def check_run(run: ChaosRun, report: ChaosReport, r: redis.Redis) -> None:
    """Every check of a finished run; fills ``report``.

    From Redis, for every job the submitter got an id for:
      1. it still exists (with everysec: unless its submit was acknowledged within
         EVERYSEC_WINDOW_S before a Redis crash: counted as an fsync loss, not a violation);
      2. it is terminal (completed, failed or cancelled), in exactly the matching ``ended``
         index and in no queue, delayed, waiting or running index and holds no lease;
      3. the fleet event stream holds exactly one terminal event for it, of its state;
      4. its timeline is consistent: every attempt closed, ``claims`` = attempts in the
         timeline, at most one attempt ``completed`` and, if so, it is the last one and the job
         is completed; ``lost`` = attempts that ended ``lost`` (+1 when it failed LeaseLost);
         ``infra`` = attempts that ended ``requeued`` (+1 when it failed at the cap of
         FLEETQ_MAX_INFRA_FAULTS);
      5. attempts were charged only for faults of the job: ``attempts`` = attempts that ended
         ``retrying`` + 1 if it failed for a job fault; an ``ok`` job has ``attempts`` 0 and
         never fails but by LeaseLost or the infrastructure cap; an ``error`` job fails
         RuntimeError and a ``hang`` job Timeout, after exactly ``max_attempts``, unless
         cancelled, LeaseLost or capped;
      6. a cancelled job was asked to be cancelled; an acknowledged ``cancelled`` ends
         cancelled, an acknowledged ``cancelling`` ends cancelled or completed;
      7. its priority is that of the last acknowledged bump (or of a bump whose reply was lost);
      8. a completed job's outputs are intact: a manifest, one blob per entry, each blob as
         long as the manifest says, ``image/png``, and a valid PNG (CRCs, inflatable, the
         job's width, height and colour, and the job's own tag in its embedded prompt).
    From the fakes' own logs (they survive restarts; cross-checked against each instance's
    final ``/history``):
      9. a completed job's completing attempt matches a successful execution of that job's
         prompt on the instance of that attempt's host and GPU, ending inside the attempt, that
         made the very files of the manifest (so no completion came from anywhere else);
     10. every charged attempt of an ``error`` job matches an execution that failed;
     11. no ``ok`` prompt failed and no ``error`` or ``hang`` prompt succeeded on a fake.
    From the supervisors' logs:
     12. at most one supervisor was told its completion of a job was accepted (logged
         ``completed``), and it is the host and GPU of the attempt Redis shows completed; none
         for a job that did not complete.
    And:
     13. a job a zombie claimed shows that one claim, ended ``lost`` (or ``cancelled``);
     14. no claim started on a GPU between its XID 79 and its clear (allowing the puller
         GATE_REACTION_MS to react; skipped when its supervisor restarted or was stopped, or
         Redis was down, meanwhile: the fault then reached the supervisor late).
     15. no job exists in Redis that the submitter did not get an id for.
    """
    o, keys, now_ms = run.o, Keys(run.settings.namespace), int(time.time() * 1000)
    by_tag, exec_counts, done_by_port = read_executions(run.fleet.workdir)
    report.counts.update(exec_counts)
    supervisor_logs = read_supervisor_logs(run.fleet.workdir)
    report.counts["supervisor_stale_refusals"] = supervisor_logs.refusals
    bad = report.violations.append

    def members(key: str) -> set[str]:
        return {m.decode() for m in cast("list[bytes]", r.zrange(key, 0, -1))}

    ended = {state: members(keys.ended(SERVICE, state)) for state in TERMINAL}
    class_queues = [keys.class_queue(SERVICE, c.decode()) for c in r.hkeys(keys.classes(SERVICE))]
    active = {
        "queue": members(keys.queue(SERVICE)).union(*(members(q) for q in class_queues)),
        "delayed": members(keys.delayed(SERVICE)),
        "waiting": members(keys.waiting(SERVICE)),
        "running": members(keys.running(SERVICE)),
        "leases": members(keys.leases),
    }
    for name, ids in active.items():
        if ids:
            bad(f"after the drain {len(ids)} job(s) left in {name}: {sorted(ids)[:5]}")
    terminal_events: dict[str, list[str]] = collections.defaultdict(list)
    events_complete = True
    last = "-"
    first_id: str | None = None
    while True:
        batch = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            r.xrange(keys.events, min=last, max="+", count=10_000),
        )
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        for entry_id, fields in batch:
            first_id = first_id or entry_id.decode()
            kind = _text(fields.get(b"type"))
            if kind in TERMINAL:
                terminal_events[_text(fields.get(b"job"))].append(kind)
            report.counts[f"events_{kind}"] += 1
        last = batch[-1][0].decode()
    info: dict[str, Any] = r.xinfo_stream(keys.events) if first_id else {}
    if first_id is None or info.get("entries-added") != r.xlen(keys.events):
        events_complete = False
        report.notes.append("the event stream was trimmed; check 3 skipped")

    accepted = run.accepted
    # Acknowledged writes inside the window before a crash: what everysec would have put at
    # risk had the machine (not only the process) died; the checks below prove their fate.
    report.counts["window_submits"] = sum(
        1 for a in accepted if _within_window(a.acked, run.redis_kills) is not None
    )
    report.counts["window_operator_writes"] = sum(
        1
        for requests in (*run.cancels.values(), *run.bumps.values())
        for q in requests
        if q.reply in ("cancelled", "cancelling", "applied")
        and _within_window(q.at, run.redis_kills) is not None
    )
    hashes = _hgetall_many(r, [keys.job(a.job_id) for a in accepted])
    report.counts["submitted"] = len(accepted)
    for kind in ("ok", "error", "hang"):
        report.counts[f"kind_{kind}"] = sum(1 for a in accepted if a.plan.kind == kind)
    completed: list[tuple[Accepted, dict[str, str]]] = []
    claims_seen: list[tuple[str, Any, int, str]] = []
    for a, raw in zip(accepted, hashes, strict=True):
        job = {k.decode(): v.decode() for k, v in raw.items()}
        plan, jid = a.plan, a.job_id
        where = f"job {jid} (#{plan.index}, {plan.kind})"
        if not job:
            report.counts["missing"] += 1
            age = _within_window(a.acked, run.redis_kills)
            if o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(
                    f"submit of {jid} acknowledged {age:.2f} s before a Redis crash"
                )
            else:
                bad(f"{where}: lost (acknowledged submit, no trace in Redis)")
            continue
        state = job.get("state", "")
        report.counts[state] += 1
        if state not in TERMINAL:
            report.counts["not_terminal"] += 1
            bad(f"{where}: stuck in state {state!r} after the drain")
            continue
        homes = [s for s, ids in ended.items() if jid in ids]
        if homes != [state]:
            bad(f"{where}: state {state} but in ended indexes {homes}")
        for name, ids in active.items():
            if jid in ids:
                bad(f"{where}: terminal ({state}) but still in {name}")
        if events_complete and terminal_events.get(jid) != [state]:
            bad(f"{where}: terminal events {terminal_events.get(jid)} for state {state}")

        timeline = json.loads(job.get("timeline") or "[]")
        claims_seen.extend(
            (str(t.get("host")), t.get("gpu"), t.get("started_ms", 0), jid) for t in timeline
        )
        outcomes = [t.get("outcome") for t in timeline]
        error = json.loads(job.get("error") or "null") or {}
        etype, ekind = error.get("type"), error.get("kind")
        attempts, lost = int(job.get("attempts", 0)), int(job.get("lost", 0))
        claims = int(job.get("claims", 0))
        report.counts["claims"] += claims
        report.counts["lost_leases"] += lost
        report.counts["infra_requeues"] += outcomes.count("requeued")
        report.counts["retries"] += outcomes.count("retrying")
        report.counts["requeues"] += outcomes.count("requeued") + outcomes.count("lost")
        if state == "failed":
            report.counts[f"failed_{etype}"] += 1
        if any(t.get("ended_ms") is None for t in timeline):
            bad(f"{where}: an attempt was never closed: {outcomes}")
        if claims != len(timeline):
            bad(f"{where}: claims {claims} but {len(timeline)} attempts in the timeline")
        if outcomes.count("completed") > 1:
            bad(f"{where}: {outcomes.count('completed')} completed attempts: {outcomes}")
        if (state == "completed") != (bool(outcomes) and outcomes[-1] == "completed"):
            bad(f"{where}: state {state} but attempts ended {outcomes}")
        # 12: the supervisors that were told their completion was accepted: at most one, and
        # the one whose attempt Redis shows completed.
        last = timeline[-1] if timeline else {}
        owner = f"{last.get('host')}:{last.get('gpu')}" if state == "completed" else None
        logged = supervisor_logs.completions.get(jid, [])
        if len(logged) > 1 or any(w != owner for w, _ in logged):
            ages = [_within_window(t, run.redis_kills) for _, t in logged]
            if o.fsync == "everysec" and any(age is not None for age in ages):
                report.fsync_losses.append(f"completion of {jid} logged by a supervisor within "
                                           "the window before a Redis crash")  # fmt: skip
            else:
                bad(f"{where}: supervisors were told they completed it on "
                    f"{[w for w, _ in logged]}; Redis says {state}, by {owner}")  # fmt: skip
        elif state == "completed" and not logged:
            report.counts["completions_unlogged"] += 1
        elif logged:
            report.counts["completions_logged"] += 1
        lease_lost = state == "failed" and etype == "LeaseLost"
        # Failed for faults of GPUs or backends, after FLEETQ_MAX_INFRA_FAULTS of them.
        infra_capped = state == "failed" and ekind == "infra" and not lease_lost
        gave_up = lease_lost or infra_capped  # by design, not the job's fault: never charged
        if lost != outcomes.count("lost") + (1 if lease_lost else 0):
            bad(f"{where}: lost {lost} but attempts ended {outcomes}")
        if "infra" in job and int(job["infra"]) != outcomes.count("requeued") + infra_capped:
            bad(f"{where}: infra {job['infra']} but attempts ended {outcomes}")
        charged = outcomes.count("retrying") + (
            1 if state == "failed" and ekind in ("job", "final") else 0
        )
        if attempts != charged:
            bad(
                f"{where}: attempts {attempts}, but {charged} attempt(s) ended in a job fault "
                f"({outcomes}, error {etype})"
            )

        # What the job's kind allows (5 and 6).
        requests = run.cancels.get(jid, [])
        replies = {q.reply for q in requests}
        asked = bool(replies & {"cancelled", "cancelling", "unknown"})
        if state == "cancelled" and not asked:
            bad(f"{where}: cancelled, but nobody asked (cancel replies {sorted(replies)})")
        late = [q for q in requests if q.reply == "cancelled"]
        if late and state != "cancelled":
            age = _within_window(late[0].at, run.redis_kills)
            if o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(
                    f"cancel of {jid} acknowledged {age:.2f} s before a Redis crash"
                )
            else:
                bad(f"{where}: cancel acknowledged 'cancelled' but the job ended {state}")
        if "cancelling" in replies and state not in ("cancelled", "completed"):
            bad(f"{where}: cancel acknowledged 'cancelling' but the job ended {state}")
        if plan.kind == "ok":
            if attempts != 0:
                bad(f"{where}: an ok job was charged {attempts} attempt(s): {outcomes} {etype}")
            if state == "failed" and not gave_up:
                bad(f"{where}: an ok job failed: {etype}: {error.get('message')}")
        else:
            if state == "completed":
                bad(f"{where}: a job that cannot succeed completed")
            expected = "RuntimeError" if plan.kind == "error" else "Timeout"
            if (
                state == "failed"
                and not gave_up
                and (etype != expected or attempts != o.max_attempts)
            ):
                bad(
                    f"{where}: failed {etype} after {attempts} attempt(s), expected {expected} "
                    f"after {o.max_attempts}"
                )
            if plan.kind == "error" and attempts:
                errors = sum(1 for e in by_tag.get(plan.index, []) if e.outcome == "error")
                if errors < attempts:
                    bad(
                        f"{where}: {attempts} attempt(s) charged but the fakes failed it "
                        f"{errors} time(s)"
                    )
        if state == "failed" and gave_up:
            why = "lease_lost" if lease_lost else "infra_capped"
            report.counts[f"failed_{why}_{plan.kind}"] += 1

        # 7: bumps.
        priority = int(job.get("priority", "0"))
        allowed = {plan.priority}
        for q in run.bumps.get(jid, []):
            if q.reply == "applied":
                allowed = {int(q.priority or 0)}
            elif q.reply == "unknown":
                allowed.add(int(q.priority or 0))
        if priority not in allowed:
            acked = [q for q in run.bumps.get(jid, []) if q.reply == "applied"]
            age = _within_window(acked[-1].at, run.redis_kills) if acked else None
            if o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(
                    f"bump of {jid} acknowledged {age:.2f} s before a Redis crash"
                )
            else:
                bad(f"{where}: priority {priority}, expected one of {sorted(allowed)}")
        if jid in run.zombie_jobs:
            frozen = [t.get("outcome") for t in timeline if t.get("host") == ZOMBIE_HOST]
            age = _within_window(run.zombie_jobs[jid], run.redis_kills)
            if not frozen and o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(f"zombie claim of {jid} acknowledged {age:.2f} s "
                                           "before a Redis crash")  # fmt: skip
            elif len(frozen) != 1 or frozen[0] not in ("lost", "cancelled"):
                bad(f"{where}: a zombie claimed it once, its attempts there ended {frozen}")
        if state == "completed":
            completed.append((a, job))

    # 8 and 9: outputs and the fakes' record of the completing attempt.
    for i in range(0, len(completed), 200):
        chunk = completed[i : i + 200]
        pipe = r.pipeline(transaction=False)
        for a, _ in chunk:
            pipe.hgetall(keys.outputs(a.job_id))
        blobs_list = pipe.execute()
        for (a, job), blobs in zip(chunk, blobs_list, strict=True):
            _check_outputs(run, report, a, job, blobs, by_tag, now_ms)

    # 11: the fakes' logs against the workload, and against each instance's own /history.
    plans = {p.index: p for p in run.plans}
    for tag, executions in by_tag.items():
        known_plan = plans.get(tag)
        if known_plan is None:
            bad(f"a fake ran a prompt with unknown tag {tag}")
            continue
        for e in executions:
            if known_plan.kind == "ok" and e.outcome == "error":
                bad(f"#{tag} (ok) failed on port {e.port}: prompt {e.prompt}")
            if known_plan.kind != "ok" and e.outcome == "success":
                bad(f"#{tag} ({known_plan.kind}) succeeded on port {e.port}: prompt {e.prompt}")
    for port, history in run.history.items():
        missing = set(history) - done_by_port.get(port, set())
        if missing:
            bad(
                f"port {port}: {len(missing)} prompt(s) in /history missing from the execution "
                f"log: {sorted(missing)[:3]}"
            )

    # 14: no claim on a GPU between its XID and its clear (after the gate's reaction time),
    # unless its supervisor restarted (a fresh process forgets injected faults), or was
    # stopped or Redis was down (the fault reached the supervisor late: after a SIGCONT the
    # pullers may claim before the control task reads the fault).
    for k, gpu, sent, cleared in run.xid_windows:
        host = run.fleet.host(k)
        restarted = any(sent - 1 <= t <= cleared for t in run.fleet.started_at[k])
        outage = any(down <= cleared and up + 2 >= sent for down, up in run.redis_outages)
        paused = any(p == k and a <= cleared and b + 2 >= sent for p, a, b in run.pauses)
        if restarted or outage or paused:
            report.counts["xid_windows_skipped"] += 1
            continue
        begin, end = int(sent * 1000) + GATE_REACTION_MS, int(cleared * 1000)
        for c_host, c_gpu, started, jid in claims_seen:
            if c_host == host and c_gpu == gpu and begin < started < end:
                bad(
                    f"job {jid} claimed on {host}:{gpu} {started - begin + GATE_REACTION_MS} ms "
                    "after an XID 79 there, before the GPU was cleared"
                )
        report.counts["xid_windows_checked"] += 1

    # No job that nobody submitted.
    known = {a.job_id for a in accepted}
    every = set().union(*ended.values(), *active.values())
    strays = every - known
    if strays:
        bad(
            f"{len(strays)} job(s) in Redis that the submitter never got an id for: "
            f"{sorted(strays)[:5]}"
        )


def check_keys_after_retention(settings: Settings, report: ChaosReport, r: redis.Redis) -> None:
    """The last check (it deletes data): once retention passed, nothing is left but live jobs
    and fixed keys.

    Every key with a time to live is taken as expired (the job retention, the output TTL, the
    leases, the host records: all run out in time), one reaper pass with a retention of one
    second prunes the ``ended`` indexes, then :func:`key_audit.audit_keys` lists anything else
    (a key without a TTL that belongs to no live job, an index entry of a job that is gone).
    """
    keys = Keys(settings.namespace)
    live = live_jobs(r, keys)
    expired = 0
    for key in list(r.scan_iter(match=keys.prefix + "*", count=1000)):
        if cast(int, r.pttl(key)) > 0:
            expired += r.delete(key)
    # The reaper prunes what finished more than the retention (1 s here) ago, by Redis's clock.
    newest = max(
        (
            float(score)
            for key in r.scan_iter(match=keys.ended("*", "*"), count=1000)
            for _, score in cast("list[tuple[bytes, float]]", r.zrevrange(key, 0, 0, True))
        ),
        default=0.0,
    )
    seconds, micros = cast("tuple[int, int]", r.time())
    wait_s = (newest + 1_100 - (seconds * 1000 + micros // 1000)) / 1000
    if wait_s > 0:
        time.sleep(wait_s)  # the last job's one-second retention runs out
    store = SyncStore(settings.with_overrides(retention_s=1))
    try:
        outcome = store.run(store.protocol.reap("chaos-audit", lock_ms=10, gap_ms=10**9))
    finally:
        store.close()
    leftovers = audit_keys(r, keys, live)
    report.counts.update(
        audit_expired_keys=expired,
        audit_pruned=outcome.pruned,
        audit_live_jobs=len(live),
        audit_leftovers=len(leftovers),
    )
    for problem in leftovers:
        report.violations.append(f"key audit: {problem}")


def _check_outputs(
    run: ChaosRun,
    report: ChaosReport,
    a: Accepted,
    job: dict[str, str],
    blobs: dict[bytes, bytes],
    by_tag: Mapping[int, list[Execution]],
    now_ms: int,
) -> None:
    bad = report.violations.append
    plan, where = a.plan, f"job {a.job_id} (#{a.plan.index}, {a.plan.kind})"
    manifest = json.loads(job.get("outputs") or "[]")
    if not manifest:
        bad(f"{where}: completed without an output manifest")
        return
    if not blobs:
        expires = int(job.get("finished_ms", "0")) + run.settings.output_ttl_s * 1000
        if now_ms > expires:
            report.counts["outputs_expired"] += 1
        else:
            bad(f"{where}: outputs missing before their TTL")
        return
    if len(blobs) != len(manifest):
        bad(f"{where}: {len(blobs)} blobs for {len(manifest)} manifest entries")
    for i, entry in enumerate(manifest):
        data = blobs.get(str(i).encode())
        if data is None:
            bad(f"{where}: output {i} ({entry.get('filename')}) has no bytes")
            continue
        if len(data) != entry.get("size"):
            bad(f"{where}: output {i} is {len(data)} bytes, the manifest says {entry.get('size')}")
        if entry.get("content_type") != "image/png":
            bad(f"{where}: output {i} has content type {entry.get('content_type')!r}")
        problem = verify_png(data, plan)
        if problem:
            bad(f"{where}: output {i} ({entry.get('filename')}) is not intact: {problem}")
        else:
            report.counts["outputs_verified"] += 1
    # 9: the attempt that completed ran on a fake that really made these files.
    last = json.loads(job.get("timeline") or "[]")[-1]
    located = run.fleet.where_port(str(last.get("host")), last.get("gpu"))
    if located is None:
        bad(f"{where}: completed by {last.get('host')}:{last.get('gpu')}, which has no backend")
        return
    files = {str(entry.get("filename")) for entry in manifest}
    begin, end = last["started_ms"] - CLOCK_SLACK_MS, last["ended_ms"] + CLOCK_SLACK_MS
    matches = [
        e
        for e in by_tag.get(plan.index, [])
        if e.port == located
        and e.outcome == "success"
        and begin <= e.ended <= end
        and files <= set(e.files)
    ]
    if not matches:
        seen = [
            (e.port, e.outcome, e.ended - last["started_ms"]) for e in by_tag.get(plan.index, [])
        ]
        bad(
            f"{where}: completed by {last.get('host')}:{last.get('gpu')} (port {located}) but no "
            f"execution there made {sorted(files)} during the attempt; executions {seen}"
        )
