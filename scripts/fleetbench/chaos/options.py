"""The chaos run's options (one command-line flag each), its constants and its report."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

SERVICE = "comfyui"
NAMESPACE = "chaos"
ZOMBIE_HOST = "chaos-zombie"
TERMINAL = ("completed", "failed", "cancelled")
#: A Redis crash under ``appendfsync everysec`` may lose the writes of about the last second
#: (up to two when a slow fsync postpones the write). Acknowledged writes older than this before
#: a crash must survive it in either mode; with ``always`` nothing acknowledged may be lost.
EVERYSEC_WINDOW_S = 2.0
#: Slack between the Redis clock (timelines) and the fakes' clock (execution logs): both are
#: this machine's clock, read by different processes.
CLOCK_SLACK_MS = 250
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: After a fault reaches a supervisor, a puller that already passed its health gate may still
#: claim once: its blocking claim waits up to ``claim_block_s`` (1 s).
GATE_REACTION_MS = 2000


# -- options and report ----------------------------------------------------------------------


@dataclass
class ChaosOptions:
    """One chaos run. Counts of chaos events are spread over the submit period (one per slot
    of equal length, at a random offset in its slot), so a seed gives the same schedule."""

    seed: int = 1
    fsync: str = "always"
    jobs: int = 3000
    #: Submits are spread evenly over this many seconds; the chaos happens in the same period.
    submit_s: float = 150.0
    supervisors: int = 3
    gpus: int = 2
    lease_ms: int = 2000
    max_attempts: int = 2
    # -- the workload ------------------------------------------------------------------------
    error_fraction: float = 0.06
    hang_fraction: float = 0.02
    min_work_s: float = 0.05
    max_work_s: float = 0.35
    hang_timeout_s: float = 1.0
    ok_timeout_s: float = 120.0
    # -- the chaos (events over the submit period) -------------------------------------------
    supervisor_kills: int = 20
    supervisor_terms: int = 4
    #: SIGSTOP a supervisor for longer than a lease, then SIGCONT: a live zombie whose jobs
    #: were taken back and run elsewhere, and whose late writes must all be refused.
    supervisor_pauses: int = 6
    redis_kills: int = 8
    fake_restarts: int = 30
    xids: int = 12
    cancels: int = 150
    bumps: int = 150
    zombies: int = 5
    #: Redis stalls (``DEBUG SLEEP``) of ``stall_s``, longer than every socket timeout (3 s).
    stalls: int = 4
    stall_s: float = 4.0
    #: Share of the commands of supervisors, submitter, operators and zombies whose reply is
    #: lost after Redis ran them (0: no proxy in between).
    drop_rate: float = 0.005
    #: Chaos starts this long after the first submit.
    warmup_s: float = 2.0
    drain_timeout_s: float = 180.0
    workdir: str | None = None
    keep_workdir: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.fsync not in ("always", "everysec"):
            raise ValueError("fsync must be always or everysec")
        if self.jobs < 1 or self.supervisors < 1 or self.gpus < 1:
            raise ValueError("jobs, supervisors and gpus must be positive")
        if self.error_fraction + self.hang_fraction > 1:
            raise ValueError("error_fraction + hang_fraction must be at most 1")
        if not 0 <= self.drop_rate < 0.5:
            raise ValueError("drop_rate must be 0 or more and below 0.5")


@dataclass
class ChaosReport:
    options: ChaosOptions
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    #: Acknowledged writes missing after an ``everysec`` crash, inside the documented window.
    fsync_losses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    schedule_digest: str = ""
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)

    def summary(self) -> str:
        o, c = self.options, self.count
        lines = [
            f"chaos: seed {o.seed}, appendfsync {o.fsync}, {o.jobs} jobs over {o.submit_s:g} s, "
            f"{o.supervisors} supervisors x {o.gpus} GPUs, lease {o.lease_ms} ms, "
            f"max_attempts {o.max_attempts} (schedule {self.schedule_digest})",
            f"jobs: submitted {c('submitted')} (ok {c('kind_ok')}, error {c('kind_error')}, "
            f"hang {c('kind_hang')}); completed {c('completed')}, failed {c('failed')} "
            f"(RuntimeError {c('failed_RuntimeError')}, Timeout {c('failed_Timeout')}, "
            f"LeaseLost {c('failed_LeaseLost')}, infrastructure cap "
            f"{sum(c(f'failed_infra_capped_{k}') for k in ('ok', 'error', 'hang'))}), cancelled "
            f"{c('cancelled')}; "
            f"not terminal {c('not_terminal')}, missing {c('missing')}",
            f"lifecycle: claims {c('claims')}, requeues {c('requeues')} (lost leases "
            f"{c('lost_leases')}, infra requeues {c('infra_requeues')}), job-fault retries "
            f"{c('retries')}; puller runs ended by a refused stale write "
            f"{c('supervisor_stale_refusals')}; completions logged by the supervisor of the "
            f"completing attempt {c('completions_logged')} (unlogged {c('completions_unlogged')})",
            f"kills: supervisor SIGKILL {c('supervisor_sigkill')}, SIGTERM "
            f"{c('supervisor_sigterm')}, SIGSTOP/SIGCONT {c('supervisor_sigstop')}, restarts "
            f"{c('supervisor_restarts')}; redis SIGKILL "
            f"{c('redis_sigkill')}, stalls {c('redis_stalls')} x {o.stall_s:g} s; replies lost "
            f"{c('replies_dropped')} (drop rate {o.drop_rate:g})",
            f"backend faults: fake restarts {c('fake_restarts')} (+{c('orphan_restarts')} of "
            f"instances stuck on an orphaned prompt); XID 79 {c('xid_sent')} (seen unhealthy "
            f"{c('xid_observed')}, cleared {c('xid_clears')}; no claim in between: "
            f"{c('xid_windows_checked')} checked, {c('xid_windows_skipped')} skipped)",
            f"operators: cancels {c('cancel_requests')} (cancelled {c('cancel_cancelled')}, "
            f"cancelling {c('cancel_cancelling')}, already ended {c('cancel_terminal')}, "
            f"unknown {c('cancel_unknown')}); bumps {c('bump_requests')} (applied "
            f"{c('bump_applied')}, not queued {c('bump_refused')}, unknown {c('bump_unknown')})",
            f"zombies: {c('zombie_claims')} claims, {c('zombie_refused')} stale writes refused, "
            f"{c('zombie_accepted')} accepted",
            f"backends: executions {c('exec_total')} (success {c('exec_success')}, error "
            f"{c('exec_error')}, interrupted {c('exec_interrupted')}), prompts dropped by "
            f"restarts {c('exec_dropped')}",
            f"key audit after retention: {c('audit_expired_keys')} keys with a TTL taken as "
            f"expired, {c('audit_pruned')} index entries pruned, {c('audit_live_jobs')} live "
            f"jobs, {c('audit_leftovers')} leftovers",
            f"durability: acknowledged writes lost {len(self.fsync_losses)} (of "
            f"{c('window_submits')} submits and {c('window_operator_writes')} cancels/bumps "
            f"acknowledged <= {EVERYSEC_WINDOW_S:g} s before a Redis crash); redis down "
            f"{self.timings.get('redis_down_s', 0):.1f} s in total, AOF reload up to "
            f"{self.timings.get('redis_reload_max_s', 0):.2f} s",
            f"time: submit {self.timings.get('submit_s', 0):.0f} s, drain "
            f"{self.timings.get('drain_s', 0):.0f} s, checks {self.timings.get('check_s', 0):.1f}"
            f" s; throughput {self.timings.get('jobs_per_s', 0):.1f} jobs/s",
            f"violations: {len(self.violations)}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  lost in the everysec window: {v}" for v in self.fsync_losses[:20]]
        lines += [f"  VIOLATION {v}" for v in self.violations[:50]]
        if len(self.violations) > 50:
            lines.append(f"  ... and {len(self.violations) - 50} more")
        return "\n".join(lines)
