"""The circuit breaker of rule 9: opens after consecutive failed attempts, lets one probe
through per cooldown, grows the cooldown up to its cap, and closes on any answer."""

from __future__ import annotations

import threading

from credit_check._breaker import BreakerState, CircuitBreaker


class Timer:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_the_threshold_of_consecutive_failures_only() -> None:
    b = CircuitBreaker(threshold=3, timer=Timer())
    assert not b.failure() and not b.failure()
    b.success()  # an answer in between resets the count
    assert not b.failure() and not b.failure()
    assert b.allow() and b.state is BreakerState.CLOSED
    assert b.failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.opened_count == 1


def test_one_probe_at_a_time_after_the_cooldown_and_success_closes() -> None:
    timer = Timer()
    b = CircuitBreaker(threshold=1, cooldown=2.0, timer=timer)
    b.failure()
    timer.now += 1.9
    assert not b.allow() and 0.09 < b.retry_in < 0.11
    timer.now += 0.2
    assert b.allow() and b.state is BreakerState.HALF_OPEN
    others: list[bool] = []
    t = threading.Thread(target=lambda: others.append(b.allow()))
    t.start()
    t.join()
    assert others == [False]  # another thread waits while the probe is out
    assert b.allow()  # the probe's own retry
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow()


def test_a_failed_probe_doubles_the_cooldown_up_to_the_cap() -> None:
    timer = Timer()
    b = CircuitBreaker(threshold=1, cooldown=1.0, max_cooldown=3.0, timer=timer)
    b.failure()
    waits = []
    for _ in range(4):
        waits.append(b.retry_in)
        timer.now += b.retry_in
        assert b.allow()
        b.failure()
    assert waits == [1.0, 2.0, 3.0, 3.0]
    assert b.opened_count == 1  # still the same outage
    b.success()
    b.failure()
    assert b.retry_in == 1.0  # a new outage starts from the first cooldown


def test_a_late_failure_of_another_thread_does_not_end_the_probe() -> None:
    timer = Timer()
    b = CircuitBreaker(threshold=1, cooldown=1.0, timer=timer)
    b.failure()
    timer.now += 1.0
    assert b.allow()  # this thread probes
    t = threading.Thread(target=b.failure)  # a call that started before the outage
    t.start()
    t.join()
    assert b.state is BreakerState.HALF_OPEN
    b.success()
    assert b.state is BreakerState.CLOSED


def test_a_probe_released_without_a_verdict_lets_the_next_one_go() -> None:
    timer = Timer()
    b = CircuitBreaker(threshold=1, cooldown=1.0, timer=timer)
    b.failure()
    timer.now += 1.0
    assert b.allow()
    b.release()
    assert b.state is BreakerState.OPEN
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(b.allow()))
    t.start()
    t.join()
    assert got == [True]
