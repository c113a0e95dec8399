"""政府采购投标 — a procurement platform's bid submission, guarded by the credit check.

* ``POST /tenders/{tender_id}/bids`` — a bid by one supplier; the ASGI middleware checks
  ``bidder.uscc`` before FastAPI sees the request and refuses a listed supplier with a
  403 ``application/problem+json`` naming the measure and its legal basis.
* ``POST /tenders/{tender_id}/consortium-bids`` — a consortium (联合体) bid: the lead and
  every member are checked; the most severe member outcome rules.
* ``POST /tenders/{tender_id}/opening`` — bid opening (开标): every bidder of the tender is
  checked again in one batch with the service's signed answers (``checker.check_many(…,
  online=True)``: each decision carries a receipt, 查询凭证), as 财库〔2016〕125号 requires a
  credit query at the bid deadline; the bidders' CSV and the case's printable query record
  (``checker.case_report``: every check of the tender — bidders refused at submission
  included — with receipts and a verification digest) are kept with the tender file;
  ``GET /tenders/{tender_id}/opening/report.csv`` and ``…/opening/query-record.html``
  download them.

Run it against the sandbox (see README.md)::

    credit-check serve --demo
    python examples/procurement/app.py --reports-dir ./tender-files     # CREDIT_CHECK_* set
"""

from __future__ import annotations

import argparse
import csv
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from credit_check import (
    Checker,
    CreditCheckASGIMiddleware,
    Decision,
    DecisionGroup,
    FromJSON,
    FromPath,
    Route,
    Subject,
    Transaction,
)

SCENARIO = "procurement"

ROUTES = [
    Route("POST", "/tenders/{tender_id}/bids", SCENARIO,
          subject=FromJSON("bidder.uscc"), case_id=FromPath("tender_id")),
    Route("POST", "/tenders/{tender_id}/consortium-bids", SCENARIO,
          subject=FromJSON("lead.uscc"), members=FromJSON("members.*.uscc"),
          case_id=FromPath("tender_id")),
]

REPORT_COLUMNS = [
    "queried_at", "tender_id", "bid_no", "role", "subject", "name", "outcome", "degraded",
    "measures", "legal_basis", "entries", "catalog_version", "data_version", "decision_id",
]


class Party(BaseModel):
    uscc: str = Field(max_length=32, description="统一社会信用代码 (or 身份证号码 of a natural person)")
    name: str = Field(max_length=200)


class Bid(BaseModel):
    bidder: Party
    price: str = Field(pattern=r"^\d{1,12}(\.\d{1,2})?$")


class ConsortiumBid(BaseModel):
    lead: Party
    members: list[Party] = Field(min_length=1, max_length=20)
    price: str = Field(pattern=r"^\d{1,12}(\.\d{1,2})?$")


@dataclass
class Bidder:
    bid_no: str
    role: str               # "bidder", "lead" or "member"
    code: str
    name: str


@dataclass
class BidBook:
    """The bids received, by tender (a real platform keeps them in its database)."""

    bids: dict[str, list[Bidder]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, tender_id: str, parties: list[tuple[str, Party]]) -> str:
        with self.lock:
            book = self.bids.setdefault(tender_id, [])
            bid_no = f"{tender_id}-B{len({b.bid_no for b in book}) + 1:03d}"
            book += [Bidder(bid_no, role, p.uscc, p.name) for role, p in parties]
            return bid_no

    def bidders(self, tender_id: str) -> list[Bidder]:
        with self.lock:
            return list(self.bids.get(tender_id, []))


def _shown(subject: Subject) -> str:
    return subject.masked_id  # natural persons' id numbers are masked (rule 10)


def query_rows(tender_id: str, bidders: list[Bidder], group: DecisionGroup) -> list[dict[str, str]]:
    """One query-record row per bidder (per member of a consortium)."""
    rows = []
    for bidder, d in zip(bidders, group, strict=True):
        rows.append({
            "queried_at": d.decided_at.isoformat(timespec="seconds"),
            "tender_id": tender_id, "bid_no": bidder.bid_no, "role": bidder.role,
            "subject": _shown(d.subject), "name": bidder.name, "outcome": d.outcome.value,
            "degraded": "yes" if d.degraded else "no",
            "measures": "; ".join(f"{m.code} {m.name}" for m in d.measures),
            "legal_basis": "; ".join(dict.fromkeys(m.legal_basis for m in d.measures)),
            "entries": "; ".join(f"{e.list_code} {e.issuing_department} {e.basis_document}"
                                 f" ({e.status.value})" for e in d.matches),
            "catalog_version": d.catalog_version or "", "data_version": d.data_version or "",
            "decision_id": d.decision_id,
        })
    return rows


def write_report(path: Path, rows: list[dict[str, str]]) -> None:
    """Write the CSV (UTF-8 with a BOM, so that spreadsheet programs show the CJK text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8-sig")
    tmp.replace(path)


def open_bids(checker: Checker, tender_id: str, bidders: list[Bidder],
              reports_dir: Path) -> tuple[Path, list[dict[str, str]]]:
    """The bid-opening credit query of every bidder, written to the tender file."""
    group = checker.check_many([b.code for b in bidders],
                               Transaction(scenario=SCENARIO, case_id=tender_id), online=True)
    rows = query_rows(tender_id, bidders, group)
    path = reports_dir / f"{tender_id}-credit-query.csv"
    write_report(path, rows)
    # The whole query record of the tender, printable, with its verification digest.
    record = reports_dir / f"{tender_id}-query-record.html"
    tmp = record.with_suffix(".tmp")
    tmp.write_text(checker.case_report(tender_id), encoding="utf-8")
    tmp.replace(record)
    return path, rows


def _decision_ids(request: Request) -> list[str]:
    decided = getattr(request.state, "credit_decision", None)
    if isinstance(decided, Decision):
        return [decided.decision_id]
    if isinstance(decided, DecisionGroup):
        return [d.decision_id for d in decided]
    return []


def build_app(checker: Checker, *, reports_dir: Path,
              review: Literal["proceed", "hold"] = "hold") -> FastAPI:
    """The bid endpoints behind the credit-check middleware.

    Args:
        review: ``"hold"`` answers a REVIEW decision 202 (held for a reviewer) without
            accepting the bid; ``"proceed"`` accepts it with the decision attached.
    """
    app = FastAPI(title="政府采购投标 / procurement bids")
    app.state.bids = BidBook()
    app.add_middleware(CreditCheckASGIMiddleware, checker=checker, routes=ROUTES,
                       review=review)

    @app.post("/tenders/{tender_id}/bids")
    async def submit_bid(tender_id: str, bid: Bid, request: Request) -> dict[str, Any]:
        bid_no = app.state.bids.add(tender_id, [("bidder", bid.bidder)])
        return {"status": "received", "bid_no": bid_no, "decisions": _decision_ids(request)}

    @app.post("/tenders/{tender_id}/consortium-bids")
    async def submit_consortium(tender_id: str, bid: ConsortiumBid,
                                request: Request) -> dict[str, Any]:
        parties = [("lead", bid.lead)] + [("member", m) for m in bid.members]
        bid_no = app.state.bids.add(tender_id, parties)
        return {"status": "received", "bid_no": bid_no, "decisions": _decision_ids(request)}

    @app.post("/tenders/{tender_id}/opening")
    async def opening(tender_id: str) -> dict[str, Any]:
        bidders = app.state.bids.bidders(tender_id)
        if not bidders:
            raise HTTPException(404, f"tender {tender_id}: no bids received")
        path, rows = await run_in_threadpool(open_bids, checker, tender_id, bidders,
                                                    reports_dir)
        return {"tender_id": tender_id, "report": path.name,
                "query_record": f"{tender_id}-query-record.html", "bidders": len(rows),
                "results": [{k: r[k] for k in ("bid_no", "role", "subject", "name", "outcome")}
                            for r in rows]}

    @app.get("/tenders/{tender_id}/opening/report.csv")
    async def report(tender_id: str) -> FileResponse:
        path = reports_dir / f"{tender_id}-credit-query.csv"
        if not path.is_file():
            raise HTTPException(404, f"tender {tender_id}: no bid-opening report yet")
        return FileResponse(path, media_type="text/csv; charset=utf-8", filename=path.name)

    @app.get("/tenders/{tender_id}/opening/query-record.html")
    async def query_record(tender_id: str) -> FileResponse:
        path = reports_dir / f"{tender_id}-query-record.html"
        if not path.is_file():
            raise HTTPException(404, f"tender {tender_id}: no bid-opening query record yet")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="procurement bids behind the credit check")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--reports-dir", type=Path, default=Path("tender-files"))
    parser.add_argument("--base-url")
    parser.add_argument("--api-key")
    parser.add_argument("--department")
    parser.add_argument("--data-dir")
    parser.add_argument("--service-public-key")
    args = parser.parse_args(argv)
    overrides = {k: v for k in ("base_url", "api_key", "department", "data_dir",
                                "service_public_key") if (v := getattr(args, k)) is not None}
    import uvicorn

    with Checker.from_env(**overrides) as checker:
        checker.wait_ready(15)
        print(f"bid-opening reports go to {args.reports_dir.resolve()}")
        uvicorn.run(build_app(checker, reports_dir=args.reports_dir), host=args.host,
                    port=args.port)


if __name__ == "__main__":
    main()
