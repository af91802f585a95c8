"""A short chaos run: two supervisor processes, one SIGKILL and one SIGSTOP/SIGCONT of a
supervisor, one SIGKILL of Redis (appendfsync always), one Redis stall longer than the socket
timeout, replies lost at random on every client and supervisor connection, one fake ComfyUI
restart, one XID 79, cancels, bumps and a zombie worker, then every check of
``scripts/chaos.py`` and the key audit after retention, with zero violations allowed."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from fleetq.demo.embedded import redis_server_binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed"),
]


@pytest.mark.timeout(180)
def test_short_chaos_run_loses_nothing(chaos: ModuleType, tmp_path: Path) -> None:
    options = chaos.ChaosOptions(
        seed=7,
        fsync="always",
        jobs=300,
        submit_s=24.0,
        supervisors=2,
        gpus=2,
        supervisor_kills=1,
        supervisor_terms=0,
        supervisor_pauses=1,
        redis_kills=1,
        fake_restarts=1,
        xids=1,
        cancels=20,
        bumps=20,
        zombies=1,
        stalls=1,
        drop_rate=0.01,
        drain_timeout_s=45.0,
        workdir=str(tmp_path / "chaos"),
        progress=False,
    )
    report = chaos.run_chaos(options)
    summary = report.summary()
    assert report.ok, summary
    c = report.count
    assert c("submitted") == 300 and c("missing") == 0 and c("not_terminal") == 0, summary
    assert c("completed") + c("failed") + c("cancelled") == 300, summary
    assert c("outputs_verified") == c("completed") > 200, summary
    kills = (
        "supervisor_sigkill",
        "supervisor_sigstop",
        "redis_sigkill",
        "fake_restarts",
        "xid_sent",
    )
    assert [c(name) for name in kills] == [1, 1, 1, 1, 1], summary
    assert c("cancel_requests") == 20 and c("bump_requests") == 20, summary
    assert c("zombie_claims") == 1 and c("zombie_refused") >= 5, summary
    assert c("zombie_accepted") == 0 and not report.fsync_losses, summary
    assert c("redis_stalls") + c("redis_stall_cut") == 1 and c("replies_dropped") > 0, summary
    assert c("audit_leftovers") == 0 and c("audit_expired_keys") > 0, summary
