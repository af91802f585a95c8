"""One backoff policy for every retry loop: doubling, capped, jittered within its bounds."""

from __future__ import annotations

import pytest

from fleetq import Settings
from fleetq.backoff import BackoffPolicy
from fleetq.errors import RedisUnavailable
from fleetq.outage import OutageTolerance
from fleetq.protocol import Protocol


def test_delays_double_up_to_the_cap_and_restart_after_a_reset() -> None:
    backoff = BackoffPolicy(first_s=0.1, max_s=1.0).start()
    assert [backoff.next_s() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    backoff.reset()
    assert backoff.next_s() == 0.1


def test_jitter_shortens_each_delay_within_its_fraction() -> None:
    policy = BackoffPolicy(first_s=2.0, max_s=300.0, jitter=0.5)
    assert policy.delay_s(3, rand=lambda: 0.0) == 8.0
    assert policy.delay_s(3, rand=lambda: 1.0) == 4.0
    assert all(4.0 <= policy.delay_s(3) <= 8.0 for _ in range(200))


def test_a_very_long_outage_stays_at_the_cap() -> None:
    assert BackoffPolicy(first_s=1.0, max_s=10.0, factor=3.0).delay_s(100_000) == 10.0


@pytest.mark.parametrize(
    "kwargs",
    [{"first_s": 2.0, "max_s": 1.0}, {"first_s": -1.0, "max_s": 1.0},
     {"first_s": 1.0, "max_s": float("inf")}, {"first_s": 0.1, "max_s": 1.0, "factor": 0.5},
     {"first_s": 0.1, "max_s": 1.0, "jitter": 2.0}],
)  # fmt: skip
def test_a_policy_that_makes_no_sense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_job_retry_backoff_follows_the_settings() -> None:
    settings = Settings(backoff_base_ms=1_000, backoff_max_ms=5_000)
    protocol = Protocol(settings)
    for attempts, ceiling in [(0, 1_000), (1, 2_000), (2, 4_000), (3, 5_000), (40, 5_000)]:
        delays = {protocol.backoff_ms(attempts) for _ in range(50)}
        assert all(ceiling // 2 <= d <= ceiling for d in delays), (attempts, delays)
    assert Protocol(Settings(backoff_base_ms=0, backoff_max_ms=0)).backoff_ms(3) == 0


def test_the_clients_outage_tolerance_backs_off_and_recovers() -> None:
    tolerance = OutageTolerance()
    error = RedisUnavailable("down")
    assert [tolerance.backoff(error) for _ in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    )
    tolerance.recovered()
    assert tolerance.backoff(error) == 0.1
