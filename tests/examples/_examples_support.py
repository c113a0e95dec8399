"""Helpers of the example tests (a uniquely named module, so that test files can import it
whichever conftest pytest loaded first)."""

from __future__ import annotations

import base64
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package; the dev environment has httpx, which still
    # works. Importing the test client once here keeps the warning out of every test.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENCRYPTION_KEY = base64.b64encode(b"examples-test-key-32-bytes-long!").decode()


def load_example(name: str, module: str = "app") -> ModuleType:
    """Import ``examples/<name>/<module>.py`` under a unique module name (examples/ is not a
    package)."""
    qualified = f"example_{name}_{module}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, EXAMPLES / name / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = mod
    spec.loader.exec_module(mod)
    return mod
