"""examples/service_hall in a real headless Chromium: the clerk types a code, submits, and
sees the outcome; driven over the DevTools protocol, with a screenshot kept as evidence."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _examples_support import load_example

from credit_check import Checker

websocket = pytest.importorskip("websocket")
uvicorn = pytest.importorskip("uvicorn")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                "(.ci/run installs Debian's chromium package)")
hall = load_example("service_hall")


@pytest.fixture
def hall_url(checker: Checker) -> Iterator[str]:
    config = uvicorn.Config(hall.build_app(checker, department="示范市政务服务中心"),
                            host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Browser:
    """Headless Chromium on a loopback DevTools port, one page, a few CDP calls."""

    def __init__(self, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "--window-size=1100,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=20,
                                              suppress_origin=True)
        self.seq = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.seq += 1
        self.ws.send(json.dumps({"id": self.seq, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.seq:
                assert "error" not in msg, msg
                result: dict[str, Any] = msg["result"]
                return result

    def js(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    b = Browser(profile)
    try:
        yield b
    finally:
        b.close()


def test_clerk_checks_an_applicant_in_a_real_browser(
    hall_url: str, browser: Browser, ids: dict[str, str], tmp_path: Path, checker: Checker
) -> None:
    browser.call("Page.enable")
    browser.call("Page.navigate", url=hall_url + "/")
    browser.wait_for("document.readyState === 'complete' && !!document.querySelector('#code')")
    browser.js(f"document.querySelector('#code').value = {json.dumps(ids['a_grade_org'])};"
               "document.querySelector('#scenario').value = 'licensing';"
               "document.querySelector('form button[type=submit]').click()")
    browser.wait_for("location.pathname === '/check' && document.readyState === 'complete'")
    text = browser.js("document.body.innerText")
    assert "Green channel" in text and "R-001" in text
    assert browser.js("!!document.querySelector('form[action=\"/commitment\"]')")
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    (tmp_path / "service_hall_green_channel.png").write_bytes(shot)

    # Accept on a commitment: the page shows its due date and a "materials received" action.
    browser.js("document.querySelector('#m0').checked = true;"
               "document.querySelector('#clerk').value = '窗口A01';"
               "document.querySelector('form[action=\"/commitment\"] button').click()")
    browser.wait_for("location.pathname.startsWith('/commitment/') && "
                     "document.readyState === 'complete' && !!document.querySelector('#due')")
    (made,) = checker.commitments()
    assert browser.js("document.querySelector('#due').innerText") == made.due.isoformat()
    assert "open" in browser.js("document.querySelector('#state').innerText")
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "service_hall_commitment.png").write_bytes(shot)
    browser.js("document.querySelector('#i0').checked = true;"
               "document.querySelector('form button[type=submit]').click()")
    browser.wait_for("document.readyState === 'complete' && "
                     "document.querySelector('#state').innerText.includes('fulfilled')")
    assert checker.commitments()[0].state == "fulfilled"

    browser.call("Page.navigate", url=hall_url + "/")
    browser.wait_for("document.readyState === 'complete' && !!document.querySelector('#code')")
    browser.js("document.querySelector('#code').value = '91110000600037341N';"
               "document.querySelector('form button[type=submit]').click()")
    browser.wait_for("location.pathname === '/check' && document.readyState === 'complete'")
    alert = browser.js("(document.querySelector('[role=alert]') || {}).innerText || ''")
    assert "check character" in alert.lower() or "校验" in alert
