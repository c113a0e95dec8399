"""Helpers shared by the sandbox integration tests (a uniquely named module, so that test
files can import them whichever conftest pytest loaded first)."""

from __future__ import annotations

import base64

from _live_sandbox import Clock, MakeChecker, admin

__all__ = ["DEPARTMENT", "ENCRYPTION_KEY", "Clock", "MakeChecker", "admin"]

ENCRYPTION_KEY = base64.b64encode(b"integration-key-32-bytes-long!!!").decode()
DEPARTMENT = "市公共资源交易中心"
