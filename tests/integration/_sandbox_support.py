"""Helpers shared by the sandbox integration tests (a uniquely named module, so that test
files can import them whichever conftest pytest loaded first)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import requests

from credit_check import Checker
from credit_check._models import CST

ENCRYPTION_KEY = base64.b64encode(b"integration-key-32-bytes-long!!!").decode()
DEPARTMENT = "市公共资源交易中心"


class Clock:
    """A settable clock that follows real time until a test moves it."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(CST) + self.offset

    def set(self, moment: dt.datetime) -> None:
        self.offset = moment - dt.datetime.now(CST)


MakeChecker = Callable[..., Checker]


def admin(sandbox: Any, method: str, path: str, **kw: Any) -> Any:
    """Call the sandbox's admin API."""
    resp = requests.request(method, sandbox.base_url + path, timeout=10,
                            headers={"Authorization": f"Bearer {sandbox.admin_key}"}, **kw)
    resp.raise_for_status()
    return resp.json() if resp.content else None
