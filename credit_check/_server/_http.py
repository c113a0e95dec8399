"""HTTP plumbing of the sandbox shared by its handlers: problem+json refusals (RFC 9457)
and strict JSON bodies (no NaN, no Infinity, no overflowing numbers)."""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

PROBLEM = "application/problem+json"


class Problem(HTTPException):
    """A refusal answered as problem+json."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(status, detail)
        self.title = title
        self.errors = errors


def problem_response(status: int, detail: str, title: str | None = None,
                     errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank",
                            "title": title or HTTPStatus(status).phrase,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; stored, they would make later answers fail to encode
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def decode_json(raw: bytes | str) -> Any:
    """A parsed JSON body.

    Raises:
        Problem: 400, naming what is wrong with the text.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return DECODER.decode(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "the body is not valid JSON: nested too deeply") from None
