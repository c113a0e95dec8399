"""Replays refused end to end (protocol v1.1, DESIGN §9.2): a local proxy in front of the
real sandbox replays (a) an older, validly signed catalogue — refused, logged, not
persisted, not used after a restart — and (b) a frozen snapshot answer, which does not
refresh the data age, so after ``max_data_age`` a firm listed after the freeze is looked up
online and denied instead of allowed locally."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests
from _replay_proxy import ReplayProxy
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, Clock, admin

from credit_check import Checker, Outcome, Transaction
from credit_check._models import CST
from credit_check._server import SandboxServer

LICENSING = Transaction(scenario="licensing", case_id="RP-1")
PROCUREMENT = Transaction(scenario="procurement", case_id="RP-2")
LATE_FIRM = "91330100MA2DDDDD8W"


def _speaks_v11(sandbox: SandboxServer) -> bool:
    resp = requests.get(sandbox.base_url + "/v1/capabilities", timeout=10,
                        headers={"Authorization": f"Bearer {sandbox.demo_key}"})
    return resp.status_code == 200


@pytest.fixture
def proxy(sandbox: SandboxServer) -> Iterator[ReplayProxy]:
    if not _speaks_v11(sandbox):
        pytest.skip("the sandbox does not speak protocol v1.1 yet (no signature_v2)")
    p = ReplayProxy(sandbox.base_url)
    p.start()
    try:
        yield p
    finally:
        p.stop()


def _checker(proxy: ReplayProxy, sandbox: SandboxServer, data: Path, **kw: Any) -> Checker:
    return Checker(base_url=proxy.base_url, api_key=sandbox.demo_key, department=DEPARTMENT,
                   data_dir=data, encryption_key=ENCRYPTION_KEY,
                   service_public_key=sandbox.public_key, start=False, feedback=False, **kw)


def _watch_org() -> str:
    from credit_check._server._demo import SHOWCASE

    value: Any = SHOWCASE["watch_org"]
    return value if isinstance(value, str) else str(value.get("id") or value.get("uscc"))


def _stricter_catalogue() -> dict[str, Any]:
    """The demo catalogue, version 2026.2, with the watch list's licensing measure a DENY."""
    raw = json.loads(resources.files("credit_check.data").joinpath("demo_catalog.json")
                     .read_text("utf-8"))
    newer = copy.deepcopy(raw)
    newer["version"] = "2026.2"
    for m in newer["measures"]:
        if m["code"] == "P-005":
            m["effect"] = "deny"
    return newer


def test_an_older_catalogue_replayed_is_refused_logged_and_not_used_after_restart(
    proxy: ReplayProxy, sandbox: SandboxServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = tmp_path / "sdk"
    checker = _checker(proxy, sandbox, data)
    try:
        assert checker.sync()
        older = proxy.last["/v1/catalog"]
        assert checker.check(_watch_org(), LICENSING).outcome is Outcome.RESTRICT
        admin(sandbox, "PUT", "/v1/admin/catalog", json=_stricter_catalogue())
        assert checker.sync()
        serial = checker.status().catalog_serial
        assert checker.check(_watch_org(), LICENSING).outcome is Outcome.DENY
        proxy.replay["/v1/catalog"] = older
        with caplog.at_level(logging.WARNING, logger="credit_check"):
            assert checker.sync()  # the proxy answers the older body whatever the ETag
        assert proxy.replayed["/v1/catalog"] >= 1
        assert "older than the serial" in caplog.text
        assert checker.status().catalog_serial == serial
        assert checker.status().refused_answers >= 1
        assert checker.check(_watch_org(), LICENSING).outcome is Outcome.DENY
    finally:
        checker.close()
    restarted = _checker(proxy, sandbox, data)
    try:
        assert restarted.status().catalog_version == "2026.2"
        assert restarted.sync()  # the proxy still replays the older one
        assert restarted.status().catalog_serial == serial
        assert restarted.check(_watch_org(), LICENSING).outcome is Outcome.DENY
    finally:
        restarted.close()


def test_a_frozen_snapshot_does_not_refresh_the_data_age(
    proxy: ReplayProxy, sandbox: SandboxServer, tmp_path: Path, clock: Clock
) -> None:
    checker = _checker(proxy, sandbox, tmp_path / "sdk", clock=clock, max_data_age=60)
    try:
        assert checker.sync() and checker.sync()  # the second answer is a (signed) delta
        proxy.replay["/v1/snapshot"] = proxy.last["/v1/snapshot"]  # frozen from now on
        admin(sandbox, "POST", "/v1/admin/entries", json={"entries": [{
            "entry_id": "rp-late", "list_code": "court.judgment_defaulter",
            "list_kind": "black", "subject_id": LATE_FIRM, "subject_kind": "organization",
            "name": "冻结后列入示例公司", "issuing_department": "某市中级人民法院",
            "basis_document": "（2026）执77号", "reason": "", "listed_on": "2026-01-01",
            "effective_from": "2026-01-01", "effective_until": None, "status": "active",
            "legal_representative_id": None,
        }]})
        clock.set(dt.datetime.now(CST) + dt.timedelta(seconds=30))
        assert checker.sync()  # the frozen answer: accepted as no change, age not refreshed
        assert proxy.replayed["/v1/snapshot"] >= 1
        assert not checker.status().stale
        clock.set(dt.datetime.now(CST) + dt.timedelta(seconds=61))
        assert checker.sync()
        status = checker.status()
        assert status.stale and status.data_age is not None and status.data_age > 60
        d = checker.check(LATE_FIRM, PROCUREMENT)
        assert d.outcome is Outcome.DENY and not d.degraded
    finally:
        checker.close()
