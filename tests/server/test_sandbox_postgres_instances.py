"""Two ``credit-check serve`` processes on one PostgreSQL database answer as one service
(issue 15): started together on an empty database they make the schema and load the demo
once; an admin change made through either is seen by a client alternating between them —
one snapshot version and checksum, one catalogue serial — within a second; feedback sent to
both is stored once; their stats agree; a large import on one does not hold up lookups on
the other."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from _postgres import PASSWORD, free_port
from _sandbox_app_support import entry, feedback_records, org_id

from credit_check._server._demo import demo_catalog, make_uscc

CLI = [sys.executable, "-m", "credit_check._cli"]
ADMIN_KEY = "cc_admin_two_instances_0123456789"
START_TIMEOUT = 60.0


def service_env(url: str, secrets: Path) -> dict[str, str]:
    """An instance's configuration, as deploy/compose.yaml gives it: the database URL
    without its password (libpq reads it from PGPASSFILE), the keys and the admin key as
    secret files made by ``credit-check serve keygen``."""
    parts = urlsplit(url)
    passfile = secrets / "pgpass"
    if not passfile.exists():
        passfile.write_text(f"{parts.hostname}:{parts.port}:{parts.path[1:]}:"
                            f"{parts.username}:{parts.password}\n")
        passfile.chmod(0o600)
        (secrets / "admin_key").write_text(ADMIN_KEY + "\n")
    bare = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))
    return {"CREDIT_CHECK_SANDBOX_DB": bare, "PGPASSFILE": str(passfile),
            "CREDIT_CHECK_SIGNING_KEY_FILE": str(secrets / "signing.key"),
            "CREDIT_CHECK_SANDBOX_DATA_KEY_FILE": str(secrets / "data.key"),
            "CREDIT_CHECK_ADMIN_KEY_FILE": str(secrets / "admin_key")}


class Instance:
    """One ``credit-check serve`` process."""

    def __init__(self, url: str, secrets: Path, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, **service_env(url, secrets)}
        env.pop("CREDIT_CHECK_ADMIN_KEY", None)
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [*CLI, "serve", "--demo", "--port", str(self.port), "--json"],
                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.info: dict[str, Any] = {}

    def wait(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.log.read_text()
        self.info = json.loads(line)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(self.base_url + "/v1/capabilities", timeout=5).status_code \
                        in (200, 401):
                    return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"instance did not start:\n{self.log.read_text()}")

    def get(self, path: str, key: str, **kw: Any) -> requests.Response:
        return requests.get(self.base_url + path, timeout=30,
                            headers={"Authorization": f"Bearer {key}"}, **kw)

    def send(self, method: str, path: str, key: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
        return requests.request(method, self.base_url + path, timeout=120, headers=headers,
                                **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def instances(pg_url: str, tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    signing, data = tmp_path / "signing.key", tmp_path / "data.key"
    made = subprocess.run([*CLI, "serve", "keygen", str(signing), "--data-key", str(data)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    # Started at the same moment on an empty database.
    pair = (Instance(pg_url, tmp_path, tmp_path / "a.log"),
            Instance(pg_url, tmp_path, tmp_path / "b.log"))
    try:
        for instance in pair:
            instance.wait()
        yield pair
    finally:
        for instance in pair:
            instance.stop()
    for instance in pair:
        text = instance.log.read_text()
        assert "Traceback" not in text and PASSWORD not in text, text


def alternate(pair: tuple[Instance, Instance], key: str, seconds: float
              ) -> list[tuple[float, dict[str, Any]]]:
    """Snapshot answers, asked of each instance in turn for ``seconds``."""
    started = time.monotonic()
    seen = []
    i = 0
    while (elapsed := time.monotonic() - started) < seconds:
        resp = pair[i % 2].get("/v1/snapshot", key)
        assert resp.status_code == 200, resp.text
        seen.append((elapsed, resp.json()))
        i += 1
    return seen


def test_two_instances_on_one_database_answer_as_one_service(
        instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    assert a.info["public_key"] == b.info["public_key"]
    assert a.info["demo_api_key"] == b.info["demo_api_key"]
    assert PASSWORD not in json.dumps(a.info) and a.info["admin_key"] == ADMIN_KEY
    key = a.info["demo_api_key"]
    # Made as version 1, the catalogue version 2, the demo version 3: each once.
    heads = {(r["version"], r["checksum"]) for _, r in alternate(instances, key, 0.3)}
    assert len(heads) == 1 and next(iter(heads))[0] == 3, heads
    stats = [i.get("/v1/admin/stats", ADMIN_KEY).json() for i in instances]
    assert stats[0]["entries"] == stats[1]["entries"] > 1000

    # An entry imported through A...
    resp = a.send("POST", "/v1/admin/entries", ADMIN_KEY,
                  json={"entries": [entry("two-1", org_id(8801))]})
    assert resp.status_code == 200, resp.text
    version = resp.json()["version"]
    assert version == 4
    seen = alternate(instances, key, 2.0)
    late = [r for t, r in seen if t >= 1.0]
    assert len(late) >= 10 and {(r["version"], r["checksum"]) for r in late} == \
        {(version, late[0]["checksum"])}, [(t, r["version"]) for t, r in seen]
    assert b.get(f"/v1/subjects/{org_id(8801)}", key).json()["entries"][0]["entry_id"] == \
        "two-1"

    # ...a status change and a catalogue through B.
    resp = b.send("POST", "/v1/admin/entries/two-1/status", ADMIN_KEY,
                  json={"status": "repaired"})
    assert resp.status_code == 200, resp.text
    resp = b.send("PUT", "/v1/admin/catalog", ADMIN_KEY, json=demo_catalog())
    assert resp.status_code == 200, resp.text
    serial = resp.json()["serial"]
    seen = alternate(instances, key, 2.0)
    late = [r for t, r in seen if t >= 1.0]
    assert {(r["version"], r["catalog_serial"], r["checksum"]) for r in late} == \
        {(version + 2, serial, late[0]["checksum"])}
    for instance in instances:
        assert instance.get("/v1/catalog", key).json()["serial"] == serial
        assert instance.get(f"/v1/snapshot?since={version}", key).status_code == 410

    # Feedback sent to both is stored once; both count the same.
    records = feedback_records(key, 20)
    first = a.send("POST", "/v1/feedback", key, json={"records": records[:15]}).json()
    second = b.send("POST", "/v1/feedback", key, json={"records": records[5:]}).json()
    assert len(first["accepted"]) == 15 and len(second["accepted"]) == 5
    assert len(second["duplicates"]) == 10
    stats = [i.get("/v1/admin/stats", ADMIN_KEY).json() for i in instances]
    assert stats[0] == stats[1] and stats[0]["records"] == 20
    assert stats[0]["duplicates"] == 10 and stats[0]["total"]["checks"] == 20


def test_a_large_import_on_one_instance_does_not_hold_up_lookups_on_the_other(
        instances: tuple[Instance, Instance]) -> None:
    a, b = instances
    key = a.info["demo_api_key"]
    import random

    rng = random.Random(15)
    out = io.StringIO()
    out.write("entry_id,list_code,list_kind,subject_id,subject_kind,issuing_department,"
              "effective_from,status\n")
    count = 40_000
    for i in range(count):
        out.write(f"big-{i},court.judgment_defaulter,black,{make_uscc(rng)},organization,"
                  "某市中级人民法院,2025-01-01,active\n")
    body = out.getvalue().encode()
    subject = org_id(8802)
    assert a.send("POST", "/v1/admin/entries", ADMIN_KEY,
                  json={"entries": [entry("probe-1", subject)]}).status_code == 200
    result: dict[str, Any] = {}

    def run_import() -> None:
        result["resp"] = a.send("POST", "/v1/admin/entries", ADMIN_KEY, data=body,
                                headers={"Content-Type": "text/csv"})

    importer = threading.Thread(target=run_import)
    started = time.monotonic()
    importer.start()
    waits = []
    while importer.is_alive() and time.monotonic() - started < 240:
        asked = time.monotonic()
        resp = b.get(f"/v1/subjects/{subject}", key)
        waits.append(time.monotonic() - asked)
        assert resp.status_code == 200 and resp.json()["entries"][0]["entry_id"] == "probe-1"
        time.sleep(0.02)
    importer.join(60)
    assert result["resp"].status_code == 200, result["resp"].text
    assert result["resp"].json()["created"] == count
    # Every lookup on B was answered while A imported, none waiting for the import.
    assert len(waits) >= 20, waits
    assert max(waits) < 2.0, sorted(waits)[-5:]
    stats = b.get("/v1/admin/stats", ADMIN_KEY).json()
    assert stats["version"] == a.get("/v1/admin/stats", ADMIN_KEY).json()["version"]
