"""The lookup cache: separate TTLs for listed and not-listed answers, stale-if-error up to
max_stale, bounded size, and thread safety."""

from __future__ import annotations

import threading
from typing import Any

from credit_check._cache import LookupCache
from credit_check._models import SubjectLookup

ORG = "91350100M000100Y43"


class Timer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(listed: bool, sid: str = ORG) -> SubjectLookup:
    entries: list[dict[str, Any]] = []
    if listed:
        entries.append({
            "entry_id": "e1", "list_code": "court.judgment_defaulter", "list_kind": "black",
            "subject_id": sid, "subject_kind": "organization",
            "issuing_department": "court", "effective_from": "2024-01-01",
        })
    return SubjectLookup.model_validate({
        "subject": {"id": sid, "kind": "organization"}, "entries": entries,
        "data_version": "1", "as_of": "2026-01-01T00:00:00+08:00",
    })


def make(timer: Timer, **kw: Any) -> LookupCache:
    return LookupCache(listed_ttl=60, not_listed_ttl=300, max_stale=3600, timer=timer, **kw)


def test_listed_answers_expire_after_listed_ttl() -> None:
    timer = Timer()
    cache = make(timer)
    cache.put(ORG, answer(True))
    timer.now += 59
    assert cache.get(ORG) is not None
    timer.now += 2
    assert cache.get(ORG) is None


def test_not_listed_answers_live_longer() -> None:
    timer = Timer()
    cache = make(timer)
    cache.put(ORG, answer(False))
    timer.now += 299
    assert cache.get(ORG) is not None
    timer.now += 2
    assert cache.get(ORG) is None


def test_stale_answer_is_kept_up_to_max_stale() -> None:
    timer = Timer()
    cache = make(timer)
    cache.put(ORG, answer(True))
    timer.now += 1000
    assert cache.get(ORG) is None
    assert cache.get_stale(ORG) is not None
    timer.now += 3000
    assert cache.get_stale(ORG) is None


def test_max_stale_zero_disables_stale_answers() -> None:
    timer = Timer()
    cache = LookupCache(listed_ttl=1, not_listed_ttl=1, max_stale=0, timer=timer)
    cache.put(ORG, answer(False))
    timer.now += 2
    assert cache.get_stale(ORG) is None


def test_a_listing_change_moves_the_answer_between_stores() -> None:
    timer = Timer()
    cache = make(timer)
    cache.put(ORG, answer(False))
    cache.put(ORG, answer(True))
    timer.now += 61  # the listed TTL applies now, not the older not-listed one
    assert cache.get(ORG) is None
    assert len(cache) == 0


def test_cache_is_bounded() -> None:
    cache = LookupCache(maxsize=3)
    for i in range(10):
        cache.put(f"id{i}", answer(False, f"id{i}"))
    assert len(cache) <= 3


def test_concurrent_use_does_not_corrupt_the_cache() -> None:
    cache = LookupCache(maxsize=50)
    answers = [answer(i % 2 == 0, f"id{i}") for i in range(200)]

    def work() -> None:
        for a in answers:
            cache.put(a.subject.id, a)
            cache.get(a.subject.id)
            cache.get_stale(a.subject.id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) <= 100
    cache.clear()
    assert len(cache) == 0
