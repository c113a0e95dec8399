"""The built wheel installs into a fresh virtualenv and exposes the public API.

The source tree is copied to a temporary directory and built there, so that the build
writes no ``build/`` or ``*.egg-info`` into the working copy. Dependencies are made
visible to the fresh venv through a ``.pth`` file naming this venv's site-packages (whose
own ``.pth`` files, among them the editable install's finder, are not processed), never
the project source directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

PROBE = """
import importlib.util, json, sys
from credit_check import Checker, Subject, Transaction, Outcome
import credit_check
import credit_check.adapters.flask
spec = importlib.util.find_spec("credit_check.adapters.flask")
print(json.dumps({
    "package": credit_check.__file__,
    "flask_adapter": spec.origin,
    "flask_adapter_module": credit_check.adapters.flask.__file__,
    "top_level_adapters": importlib.util.find_spec("adapters") is not None,
    "deny": Outcome.DENY.value,
    "subject": Subject.organization("91110000600037341L").id,
    "checker": Checker.__name__,
    "transaction": Transaction(scenario="procurement").scenario.value,
    "path": sys.path,
}))
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the source tree; return the wheel's path."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("credit_check", "adapters"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    # Build isolation fetches the build requirements (setuptools, wheel) from the
    # configured package index; --no-deps skips the runtime dependencies.
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)], cwd=src
    )
    wheels = list(out.glob("credit_check-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def fresh_venv(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed (--no-deps); return its python."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv)
    python = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(built_wheel),
        ],
        cwd=venv,
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=venv,
        ).stdout.strip()
    )
    deps = Path(sysconfig.get_paths()["purelib"])
    assert deps != ROOT, "the dependencies must not come from the project source dir"
    (site / "_project_deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    return python


def test_wheel_contains_py_typed_and_the_demo_catalogue(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as whl:
        names = set(whl.namelist())
    assert "credit_check/py.typed" in names
    assert "credit_check/data/demo_catalog.json" in names
    assert "credit_check/adapters/flask.py" in names


def test_wheel_has_no_top_level_adapters_package(built_wheel: Path) -> None:
    with zipfile.ZipFile(built_wheel) as whl:
        names = whl.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        tops = whl.read(top_level).decode().split()
    assert not [n for n in names if n.startswith("adapters/")]
    assert tops == ["credit_check"]


def test_installed_wheel_imports_the_public_api_from_site_packages(
    fresh_venv: Path, tmp_path: Path
) -> None:
    # -I: no cwd, no PYTHONPATH, no user site; the .pth in site-packages still applies.
    result = _run([str(fresh_venv), "-I", "-c", PROBE], cwd=tmp_path)
    info = json.loads(result.stdout)
    venv = fresh_venv.parent.parent
    package = Path(info["package"])
    assert venv in package.parents, info["package"]
    assert ROOT not in package.parents
    assert not any(Path(p) == ROOT for p in info["path"] if p)
    assert info["deny"] == "deny"
    assert info["subject"] == "91110000600037341L"
    assert info["checker"] == "Checker"
    assert info["transaction"] == "procurement"
    flask_adapter = Path(info["flask_adapter"])
    assert flask_adapter.is_file()
    assert flask_adapter == package.parent / "adapters" / "flask.py"
    assert Path(info["flask_adapter_module"]) == flask_adapter
    assert info["top_level_adapters"] is False


def test_installed_wheel_puts_no_adapters_package_into_site_packages(fresh_venv: Path) -> None:
    venv = fresh_venv.parent.parent
    site_dirs = list(venv.glob("lib/python*/site-packages"))
    assert len(site_dirs) == 1
    site = site_dirs[0]
    assert (site / "credit_check" / "py.typed").is_file()
    assert (site / "credit_check" / "data" / "demo_catalog.json").is_file()
    assert (site / "credit_check" / "adapters" / "flask.py").is_file()
    assert not (site / "adapters").exists()
