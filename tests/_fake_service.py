"""A scriptable list service for unit tests, served through ``responses``: signed
snapshots (full and delta) and catalogues, lookups, feedback, and switchable failures.

It speaks protocol v1.1 (capabilities, ``signature_v2`` with ``issued_at``, catalogue
``serial`` and ``epoch``, ``withheld``) unless ``v1`` is set; ``frozen`` replays a recorded
answer for a path kind, as a replaying proxy would."""

from __future__ import annotations

import datetime as dt
import json
import re
from importlib import resources
from typing import Any

import requests
import responses

from credit_check._crypto import (
    Signer,
    b64e,
    catalog_message,
    catalog_message_v2,
    id_prefix,
    pack_prefixes,
    prefix_checksum,
    snapshot_message,
    snapshot_message_v2,
)
from credit_check._ids import detect_kind

BASE = "http://list.test"
ORG = "91350100M000100Y43"
CLEAN_ORG = "91110108MA01234537"
OTHER_ORG = "91440300MA5FAAAA7M"
THIRD_ORG = "91320000MA1MBBBB9R"
PERSON = "11010519491231002X"


def demo_catalog() -> dict[str, Any]:
    text = resources.files("credit_check.data").joinpath("demo_catalog.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def entry(subject_id: str, list_code: str = "court.judgment_defaulter", *, kind: str = "black",
          subject_kind: str = "organization", status: str = "active",
          effective_from: str = "2024-01-01", effective_until: str | None = None,
          rep: str | None = None, entry_id: str | None = None) -> dict[str, Any]:
    return {
        "entry_id": entry_id or f"{list_code}:{subject_id}", "list_code": list_code,
        "list_kind": kind, "subject_id": subject_id, "subject_kind": subject_kind,
        "name": "示例", "issuing_department": "某市中级人民法院", "basis_document": "（2024）执1号",
        "reason": "", "listed_on": effective_from, "effective_from": effective_from,
        "effective_until": effective_until, "status": status, "legal_representative_id": rep,
    }


class FakeService:
    """Register with a ``responses.RequestsMock``; flip ``down`` or ``modes`` to fail."""

    def __init__(self, rsps: responses.RequestsMock, signer: Signer | None = None) -> None:
        self.signer = signer or Signer.generate()
        self.catalog = demo_catalog()
        self.entries: list[dict[str, Any]] = []
        self.reps: dict[str, str] = {}
        self.clean_since: dict[str, str] = {}
        self.extra_prefixes: set[int] = set()
        self.versions: dict[int, list[int]] = {}
        self.version = 0
        self.down = False
        # path kind ("keys", "catalog", "snapshot", "lookup", "batch", "feedback") -> mode:
        # an int status, "garbage" (malformed JSON), "schema" (wrong shape), "badsig",
        # "checksum" (delta with a wrong checksum), "timeout".
        self.modes: dict[str, Any] = {}
        self.calls: dict[str, int] = {}
        self.feedback: list[dict[str, Any]] = []
        # Protocol v1.1: False answers as a wave-1 service (no capabilities, no v2 fields).
        self.v1 = False
        self.epoch = 1
        self.serial = 1
        self.schema = 2
        self.upgrade_required = False
        self.allow_persons = True
        self.issued = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        # path kind -> the last answer given; frozen: path kind -> an answer to replay.
        self.last: dict[str, tuple[int, dict[str, str], Any]] = {}
        self.frozen: dict[str, tuple[int, dict[str, str], Any]] = {}
        self.publish()
        for method, pattern, kind in (
            ("GET", r"/v1/keys$", "keys"), ("GET", r"/v1/catalog$", "catalog"),
            ("GET", r"/v1/capabilities$", "capabilities"),
            ("GET", r"/v1/snapshot(\?.*)?$", "snapshot"), ("GET", r"/v1/subjects/[^/]+$", "lookup"),
            ("POST", r"/v1/subjects:batch$", "batch"), ("POST", r"/v1/feedback$", "feedback"),
        ):
            rsps.add_callback(method, re.compile(re.escape(BASE) + pattern),
                              callback=self._handler(kind))

    # -- data --------------------------------------------------------------------------

    def add(self, *entries: dict[str, Any], publish: bool = True) -> None:
        self.entries.extend(entries)
        if publish:
            self.publish()

    def prefixes(self) -> list[int]:
        ids = {e["subject_id"] for e in self.entries
               if e["status"] in ("active", "objection_pending")}
        ids |= {e["legal_representative_id"] for e in self.entries
                if e["legal_representative_id"] and e["status"] in ("active", "objection_pending")}
        return sorted({id_prefix(i) for i in ids} | self.extra_prefixes)

    def publish(self) -> None:
        self.version += 1
        self.versions[self.version] = self.prefixes()

    def set_catalog(self, catalog: dict[str, Any]) -> None:
        """Replace the catalogue, as an accepted admin PUT does (the serial goes up)."""
        self.catalog = catalog
        self.serial += 1

    def issued_at(self) -> str:
        # Every answer is issued a second after the one before, on the service's clock.
        self.issued += dt.timedelta(seconds=1)
        return self.issued.isoformat()

    # -- answers -----------------------------------------------------------------------

    def _handler(self, kind: str) -> Any:
        def handle(request: requests.PreparedRequest) -> Any:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            mode = self.modes.get(kind)
            if self.down or mode == "timeout":
                raise requests.exceptions.ConnectionError("connection refused")
            if isinstance(mode, int):
                headers = {"Retry-After": "0"} if mode == 429 else {}
                return mode, headers, json.dumps({"detail": f"scripted {mode}"})
            if mode == "garbage":
                return 200, {}, "{not json"
            if kind in self.frozen:
                status, headers, body = self.frozen[kind]
            else:
                status, headers, body = getattr(self, "_" + kind)(request)
                self.last[kind] = (status, headers, body)
            if mode == "schema":
                body = {"unexpected": True}
            return status, headers, "" if body is None else json.dumps(body)
        return handle

    def _keys(self, request: requests.PreparedRequest) -> Any:
        return 200, {}, {"keys": [{"kid": "k1", "alg": "Ed25519",
                                   "public_key": self.signer.public_key}]}

    def _capabilities(self, request: requests.PreparedRequest) -> Any:
        if self.v1:
            return 404, {}, {"detail": "not found"}
        return 200, {}, {"protocol": "1.1", "catalog_schema": self.schema, "epoch": self.epoch,
                         "record_kinds": ["decision", "outcome", "post_check"],
                         "receipts": False,
                         "key": {"key_id": "k_1", "department": "d",
                                 "allow_persons": self.allow_persons}}

    def _catalog(self, request: requests.PreparedRequest) -> Any:
        etag = f'"{self.catalog["version"]}-{self.serial}-{self.epoch}"'
        if request.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, None
        sig = self.signer.sign(catalog_message(self.catalog))
        if self.modes.get("catalog_sig") == "badsig":
            sig = self.signer.sign(b"something else")
        body: dict[str, Any] = {"catalog": self.catalog, "signature": sig}
        if not self.v1:
            body |= {"serial": self.serial, "epoch": self.epoch, "schema": self.schema,
                     "signature_v2": self.signer.sign(catalog_message_v2(
                         self.catalog, serial=self.serial, epoch=self.epoch,
                         schema=self.schema))}
            if self.upgrade_required:
                body["upgrade_required"] = True
        return 200, {"ETag": etag}, body

    def _v2(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.v1:
            return body
        issued = self.issued_at()
        body |= {"issued_at": issued, "catalog_serial": self.serial, "epoch": self.epoch}
        body["signature_v2"] = self.signer.sign(snapshot_message_v2(
            version=body["version"], checksum=body["checksum"], issued_at=issued,
            catalog_serial=self.serial, epoch=self.epoch, since=body.get("since"),
            changed=body.get("changed", ""), lifted=body.get("lifted", ())))
        return body

    def _snapshot(self, request: requests.PreparedRequest) -> Any:
        url = request.url or ""
        full = self.versions[self.version]
        packed = pack_prefixes(full)
        checksum = prefix_checksum(packed)
        if self.modes.get("snapshot_sig") == "badsig":
            signature = self.signer.sign(b"forged")
        else:
            signature = self.signer.sign(snapshot_message(self.version, checksum))
        since_match = re.search(r"since=(\d+)", url)
        if since_match is None:
            return 200, {}, self._v2({"version": self.version, "full": True,
                                      "prefixes": b64e(packed), "checksum": checksum,
                                      "signature": signature, "count": len(full)})
        since = int(since_match.group(1))
        if since not in self.versions or since > self.version or self.modes.get("delta") == 410:
            return 410, {}, {"detail": "delta no longer available"}
        old = set(self.versions[since])
        new = set(full)
        added, removed = sorted(new - old), sorted(old - new)
        if self.modes.get("delta") == "checksum":
            # The delta adds a bogus prefix but claims the checksum of the true full set.
            added = sorted({*added, 1} - {1} if 1 in new else {*added, 1})
        return 200, {}, self._v2({"version": self.version, "since": since, "full": False,
                                  "added": b64e(pack_prefixes(added)),
                                  "removed": b64e(pack_prefixes(removed)),
                                  "checksum": checksum, "signature": signature,
                                  "count": len(full)})

    def answer(self, subject_id: str) -> dict[str, Any]:
        kind = detect_kind(subject_id)
        rep = self.reps.get(subject_id)
        entries = [e for e in self.entries if e["subject_id"] == subject_id
                   or e["legal_representative_id"] == subject_id]
        withheld = []
        if not self.allow_persons:
            # §9.1: every person is withheld, listed or not, so the mark reveals nothing.
            if kind == "person":
                withheld.append({"role": "subject", "reason": "key_not_allowed_persons"})
                entries = []
            elif rep:
                withheld.append({"role": "legal_representative",
                                 "reason": "key_not_allowed_persons"})
                entries = [e for e in entries if e["subject_id"] == subject_id]
                rep = None
        body: dict[str, Any] = {
            "subject": {"id": subject_id, "kind": kind, "name": None,
                        "legal_representative": {"id": rep, "name": "法人"} if rep else None},
            "entries": entries,
            "clean_since": self.clean_since.get(subject_id),
            "data_version": str(self.version),
            "as_of": "2026-01-01T00:00:00+08:00",
        }
        if not self.v1:
            body["withheld"] = withheld
        return body

    def _lookup(self, request: requests.PreparedRequest) -> Any:
        subject_id = (request.url or "").rsplit("/", 1)[1]
        return 200, {}, self.answer(subject_id)

    def _batch(self, request: requests.PreparedRequest) -> Any:
        ids = json.loads(request.body or b"{}")["ids"]
        return 200, {}, {"results": [self.answer(i) for i in ids]}

    def _feedback(self, request: requests.PreparedRequest) -> Any:
        records = json.loads(request.body or b"{}")["records"]
        self.feedback.extend(records)
        return 200, {}, {"accepted": [r["record_id"] for r in records], "duplicates": [],
                         "rejected": []}
