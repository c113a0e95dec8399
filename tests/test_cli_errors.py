"""``credit-check`` with bad arguments and bad files: one clear line on stderr, exit code 2,
no traceback, and no network call (nothing listens on the configured port 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from credit_check import _cli_check
from credit_check._cli import main
from credit_check._ids import org_code_check_char, uscc_check_char


def _uscc(n: int) -> str:
    org = f"MA{n:06d}"
    body = "91350100" + org + org_code_check_char(org)
    return body + uscc_check_char(body)


VALID = _uscc(1)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    env.update({
        "CREDIT_CHECK_BASE_URL": "http://127.0.0.1:9",  # discard port: nothing answers
        "CREDIT_CHECK_API_KEY": "test-key",
        "CREDIT_CHECK_DEPARTMENT": "市公共资源交易中心",
        "CREDIT_CHECK_DATA_DIR": str(tmp_path / "data"),
        "CREDIT_CHECK_READY_TIMEOUT": "0",
        "PYTHONIOENCODING": "utf-8",
    })
    env.update(extra)
    return env


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "credit_check._cli", *args],
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          env=_env(tmp_path, **env), cwd=tmp_path, timeout=60)


def _csv(tmp_path: Path, content: bytes, name: str = "subjects.csv") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def assert_bad_input(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == 2, (proc.returncode, output)
    assert proc.stderr.startswith("credit-check: error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert "sync failed" not in output and "unavailable" not in output, output


# (name, argv maker, words the message must contain)
CASES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("no command", lambda p: [], ("required", "command")),
    ("unknown command", lambda p: ["frobnicate"], ("invalid choice", "frobnicate")),
    ("unknown option", lambda p: ["check", VALID, "--scenario", "bidding", "--colour"],
     ("unrecognized arguments", "--colour")),
    ("missing --scenario", lambda p: ["check", VALID], ("--scenario",)),
    ("missing --scenario (file)", lambda p: ["check-file", "x.csv"], ("--scenario",)),
    # (any well-formed code is a scenario a catalogue may name; a malformed one is refused)
    ("bad scenario", lambda p: ["check", VALID, "--scenario", "Tendering!"],
     ("--scenario", "malformed", "Tendering!")),
    ("missing id", lambda p: ["check", "--scenario", "bidding"], ("id",)),
    ("invalid identifier", lambda p: ["check", "91350100MA000001", "--scenario", "bidding"],
     ("18",)),
    ("bad check character", lambda p: ["check", VALID[:-1] + ("0" if VALID[-1] != "0" else "1"),
                                       "--scenario", "bidding"], ("uscc",)),
    ("empty identifier", lambda p: ["check", "", "--scenario", "bidding"], ("empty",)),
    ("look-alike identifier", lambda p: ["check", VALID.replace("M", "М"),  # Cyrillic М
                                         "--scenario", "bidding"], ("uscc",)),
    ("huge identifier", lambda p: ["check", "9" * 10_000, "--scenario", "bidding"], ()),
    ("case id too long", lambda p: ["check", VALID, "--scenario", "bidding",
                                    "--case-id", "x" * 200], ("--case-id", "128")),
    ("case id too long (file)", lambda p: ["check-file", _csv(p, f"id\n{VALID}\n".encode()),
                                           "--scenario", "bidding", "--case-id", "x" * 200],
     ("--case-id", "128")),
    ("missing file", lambda p: ["check-file", str(p / "nope.csv"), "--scenario", "bidding"],
     ("nope.csv", "no such file")),
    ("directory", lambda p: ["check-file", str(p), "--scenario", "bidding"],
     ("not a regular file",)),
    ("missing column", lambda p: ["check-file", _csv(p, f"uscc,name\n{VALID},甲公司\n".encode()),
                                  "--scenario", "bidding"], ("no column 'id'", "--column")),
    ("missing named column", lambda p: ["check-file", _csv(p, f"id\n{VALID}\n".encode()),
                                        "--scenario", "bidding", "--column", "uscc"],
     ("no column 'uscc'",)),
    ("empty file", lambda p: ["check-file", _csv(p, b""), "--scenario", "bidding"],
     ("no column",)),
    ("header only", lambda p: ["check-file", _csv(p, b"id,name\n"), "--scenario", "bidding"],
     ("no rows",)),
    ("non-UTF-8 bytes", lambda p: ["check-file", _csv(p, b"id\n\xff\xfe\x00\x81\x80\n"),
                                   "--scenario", "bidding"], ("not a text file",)),
    ("NUL bytes", lambda p: ["check-file", _csv(p, b"id\n" + VALID.encode() + b"\x00\n"),
                             "--scenario", "bidding"], ("NUL",)),
    ("oversized row", lambda p: ["check-file",
                                 _csv(p, b"id,note\n" + VALID.encode() + b"," + b"x" * 10_000
                                      + b"\n"), "--scenario", "bidding"],
     ("line 2", "field larger than field limit")),
    ("oversized header", lambda p: ["check-file", _csv(p, b"id," + b"h" * 10_000 + b"\n1\n"),
                                    "--scenario", "bidding"], ("field larger",)),
    ("report directory missing", lambda p: ["check-file", _csv(p, f"id\n{VALID}\n".encode()),
                                            "--scenario", "bidding",
                                            "--out", str(p / "no" / "report.csv")],
     ("cannot write the report", "no directory")),
    ("only invalid rows", lambda p: ["check-file", _csv(p, b"id\n123\nnot-a-code\n\n"),
                                     "--scenario", "bidding"],
     ("no valid identifier", "row 2")),
]


@pytest.mark.parametrize(("argv", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, argv: Any,
                                                needles: tuple[str, ...]) -> None:
    """Bad arguments or a bad file: 'credit-check: error: …' on stderr, exit 2, no traceback."""
    assert_bad_input(run_cli(tmp_path, *argv(tmp_path)), *needles)


@pytest.mark.parametrize(("var", "value", "needle"), [
    ("CREDIT_CHECK_BASE_URL", "not-a-url", "CREDIT_CHECK_BASE_URL"),
    ("CREDIT_CHECK_API_KEY", "", "CREDIT_CHECK_API_KEY"),
    ("CREDIT_CHECK_LISTED_TTL", "soon", "CREDIT_CHECK_LISTED_TTL"),
    ("CREDIT_CHECK_FALLBACK", "maybe", "CREDIT_CHECK_FALLBACK"),
    ("CREDIT_CHECK_READY_TIMEOUT", "ten", "CREDIT_CHECK_READY_TIMEOUT"),
    ("CREDIT_CHECK_READY_TIMEOUT", "nan", "CREDIT_CHECK_READY_TIMEOUT"),
    ("CREDIT_CHECK_READY_TIMEOUT", "-1", "CREDIT_CHECK_READY_TIMEOUT"),
])
def test_bad_configuration_exits_2_naming_the_variable(tmp_path: Path, var: str, value: str,
                                                       needle: str) -> None:
    """A bad setting names the variable, exit 2, before any lookup."""
    proc = run_cli(tmp_path, "check", VALID, "--scenario", "bidding", **{var: value})
    assert_bad_input(proc, needle)


def test_unknown_command_through_main_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """main(argv) (the console entry) exits 2 with the parser's one line."""
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("credit-check: error: ") and "frobnicate" in err


@pytest.mark.parametrize(("name", "argv", "needles"), CASES[7:], ids=[c[0] for c in CASES[7:]])
def test_bad_input_never_opens_a_checker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], name: str,
                                         argv: Any, needles: tuple[str, ...]) -> None:
    """Invalid input fails before a Checker (and so any network call) exists."""
    def refuse() -> None:
        raise AssertionError(f"{name}: a checker was opened for invalid input")

    monkeypatch.setattr(_cli_check, "_open_checker", refuse)
    for key, value in _env(tmp_path).items():
        if key.startswith("CREDIT_CHECK_"):
            monkeypatch.setenv(key, value)
    code: str | int | None
    try:
        code = main(argv(tmp_path))
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert capsys.readouterr().err.startswith("credit-check: error: ")
