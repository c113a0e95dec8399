"""The deployment files (Dockerfile, deploy/compose.yaml) configure the service as the
tests run it: their commands parse with the CLI, their environment is the one the
two-instance test gives each instance, every variable is one the code reads, and every
secret file they name is provided."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from test_sandbox_postgres_instances import service_env

from credit_check._cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
yaml = pytest.importorskip("yaml")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return data


def code_text() -> str:
    return "".join(p.read_text() for p in (ROOT / "credit_check").rglob("*.py"))


def test_the_compose_services_run_serve_with_the_tests_configuration(tmp_path: Path) -> None:
    services = compose()["services"]
    instances = [s for name, s in services.items() if name.startswith("service-")]
    assert len(instances) == 2 and services["db"]["image"].startswith("postgres:")
    tested = set(service_env("postgresql://u:p@127.0.0.1:5432/d", tmp_path))
    for service in instances:
        args = build_parser().parse_args(service["command"])
        assert args.command == "serve" and args.action is None and args.host == "0.0.0.0"
        assert set(service["environment"]) == tested
        url = service["environment"]["CREDIT_CHECK_SANDBOX_DB"]
        assert url.startswith("postgresql://") and ":" not in url.split("//")[1].split("@")[0]
        secrets = set(service["secrets"])
        for value in service["environment"].values():
            if value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in secrets, value
        assert secrets <= set(compose()["secrets"])


def test_the_dockerfile_runs_serve_and_names_only_variables_the_code_reads() -> None:
    text = (ROOT / "Dockerfile").read_text()
    entry = shlex.split(re.search(r'^ENTRYPOINT \[(.*)\]$', text, re.M)[1].replace(",", " "))
    cmd = shlex.split(re.search(r'^CMD \[(.*)\]$', text, re.M)[1].replace(",", " "))
    assert entry == ["credit-check"]
    assert build_parser().parse_args(cmd).command == "serve"
    assert "postgres" in text and "USER credit-check" in text
    source = code_text()
    names = set(re.findall(r"CREDIT_CHECK_[A-Z_]+", text + (ROOT / "deploy" / "compose.yaml")
                           .read_text()))
    assert names and all(name in source for name in names), names
