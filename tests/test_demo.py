"""``credit-check demo`` speaks to an e-government developer in Chinese first: every line
it prints around the tables leads with the Chinese text, and every scripted application
is decided as expected (exit 0)."""

from __future__ import annotations

import argparse
import re

import pytest

from credit_check import _demo

CJK = re.compile(r"[\u4e00-\u9fff]")


def _leads_with_chinese(line: str) -> bool:
    first_word = re.search(r"[A-Za-z]", line)
    first_cjk = CJK.search(line)
    return first_cjk is not None and (first_word is None or first_cjk.start()
                                      < first_word.start())


def test_the_demo_prints_chinese_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert _demo.run(argparse.Namespace(json=False)) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.strip() and not line.startswith("-")]
    # The lines the demo writes itself: the sandbox's address, the versions, both table
    # headers, the feedback heading and the closing summary.
    own = [lines[0], lines[1], lines[2], *(li for li in lines if "feedback received" in li),
           *(li for li in lines if li.startswith("类型 kind")), lines[-1]]
    assert len(own) == 6
    for line in own:
        assert _leads_with_chinese(line), line
    assert "件申请结果符合预期" in lines[-1]
    # Each application's label is Chinese first too.
    rows = lines[3:3 + len(_demo.script({k: "x" for k in _showcase_names()}))]
    assert all(_leads_with_chinese(row) for row in rows), rows


def _showcase_names() -> list[str]:
    from credit_check._server._demo import SHOWCASE

    return list(SHOWCASE)
