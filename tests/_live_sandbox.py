"""Helpers of the tests that run Checkers against the real sandbox over loopback (a uniquely
named module, importable whichever conftest pytest loaded first): a settable clock, the
Checker factory's type, and admin calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import requests

from credit_check import Checker
from credit_check._models import CST


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
    """Call the sandbox's admin API (raising on an error answer)."""
    resp = requests.request(method, sandbox.base_url + path, timeout=10,
                            headers={"Authorization": f"Bearer {sandbox.admin_key}"}, **kw)
    resp.raise_for_status()
    return resp.json() if resp.content else None
