"""`CircuitBreaker` unit tests on the autojump clock (it reads ``trio.current_time()``)."""

from __future__ import annotations

import trio

from proxy.breaker import BreakerState, CircuitBreaker, Outcome
from proxy.routing import outcome_of


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        assert breaker.try_pass() is False
        breaker.record(Outcome.FAILURE, trial=False)


async def test_three_failures_within_the_window_open_it(autojump_clock: trio.abc.Clock) -> None:
    breaker = CircuitBreaker()
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert breaker.try_pass() is None
    assert breaker.retry_after() == 30
    await trio.sleep(29)
    assert breaker.try_pass() is None
    await trio.sleep(1)
    assert breaker.state is BreakerState.HALF_OPEN


async def test_old_failures_fall_out_of_the_window(autojump_clock: trio.abc.Clock) -> None:
    breaker = CircuitBreaker()
    fail(breaker, 2)
    await trio.sleep(61)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker)
    assert breaker.state is BreakerState.OPEN


async def test_success_forgets_failures() -> None:
    breaker = CircuitBreaker()
    fail(breaker, 2)
    breaker.record(Outcome.SUCCESS, trial=False)
    fail(breaker, 2)
    assert breaker.state is BreakerState.CLOSED


async def test_half_open_lets_exactly_one_trial_through(autojump_clock: trio.abc.Clock) -> None:
    breaker = CircuitBreaker()
    fail(breaker, 3)
    await trio.sleep(30)
    assert breaker.try_pass() is True  # the trial
    assert breaker.try_pass() is None  # everyone else waits for its outcome
    breaker.record(Outcome.NEUTRAL, trial=True)  # e.g. the client went away: the trial is given back
    assert breaker.try_pass() is True
    breaker.record(Outcome.SUCCESS, trial=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.try_pass() is False


async def test_a_failed_trial_opens_it_for_a_full_period(autojump_clock: trio.abc.Clock) -> None:
    breaker = CircuitBreaker()
    fail(breaker, 3)
    await trio.sleep(45)
    assert breaker.try_pass() is True
    breaker.record(Outcome.FAILURE, trial=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 30
    assert breaker.snapshot() == {"state": "open", "recent_failures": 0, "retry_after_s": 30.0}


def test_only_backend_faults_count() -> None:
    from adapters.errors import Internal, InvalidRequest, NotReady, Unavailable, UpstreamRateLimited
    from compat.errors import QueueFull, RequestValidationError

    assert outcome_of(None) is Outcome.SUCCESS
    assert outcome_of(Unavailable("x")) is Outcome.FAILURE
    assert outcome_of(Internal("x")) is Outcome.FAILURE
    assert outcome_of(RuntimeError("a bug in the backend")) is Outcome.FAILURE
    for neutral in (InvalidRequest("x"), NotReady("x"), UpstreamRateLimited("x"), QueueFull("x")):
        assert outcome_of(neutral) is Outcome.NEUTRAL
    assert outcome_of(RequestValidationError("x")) is Outcome.NEUTRAL
    assert outcome_of(trio.Cancelled._create()) is Outcome.NEUTRAL
    assert outcome_of(trio.BrokenResourceError()) is Outcome.NEUTRAL  # the consumer closed the channel
    assert outcome_of(trio.ClosedResourceError()) is Outcome.NEUTRAL
