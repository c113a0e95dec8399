"""``credit-check serve`` as a real process: with ``--port 0`` it prints the port it really
listens on (and answers there); a port in use is a clear error; ``--print-showcase``
lists the demo subjects without starting anything."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from credit_check._server._demo import SHOWCASE

CLI = [sys.executable, "-m", "credit_check._cli", "serve"]


def test_port_0_prints_the_real_port_and_serves_there(tmp_path: Path) -> None:
    for as_json in (True, False):
        args = [*CLI, "--demo", "--db", str(tmp_path / "s.db"), "--port", "0"]
        proc = subprocess.Popen([*args, "--json"] if as_json else args,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=tmp_path)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if as_json:
                info = json.loads(first)
                base_url, key = info["base_url"], info["demo_api_key"]
            else:
                assert first.startswith("credit-check sandbox list service at http://")
                base_url = first.split(" at ")[1].split()[0]
                key = proc.stdout.readline().split(":", 1)[1].strip()
            port = int(base_url.rsplit(":", 1)[1])
            assert port != 0
            answer = requests.get(f"{base_url}/v1/capabilities", timeout=10,
                                  headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200 and answer.json()["protocol"] == "1.1"
            if as_json:
                # Answers on a kept-alive connection do not stall for the client's delayed
                # ACK (a ready-made listening socket left Nagle on: 44 ms each).
                session = requests.Session()
                session.headers["Authorization"] = f"Bearer {key}"
                times = []
                for _ in range(15):
                    t0 = time.perf_counter()
                    session.get(f"{base_url}/v1/keys", timeout=10).raise_for_status()
                    times.append(time.perf_counter() - t0)
                session.close()
                assert sorted(times)[7] < 0.035, times
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            proc.stderr.close()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = subprocess.run([*CLI, "--db", str(tmp_path / "s.db"), "--port", str(port)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1 port {port}" in done.stderr
    assert done.stdout == ""  # no address printed that nobody listens on


def test_print_showcase_lists_the_demo_subjects_and_exits(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "--demo", "--print-showcase", "--json"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["fictional"] is True
    assert {s["name"]: s["id"] for s in body["subjects"]} == SHOWCASE
    text = subprocess.run([*CLI, "--demo", "--print-showcase"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path).stdout
    assert "虚构" in text and SHOWCASE["court_defaulter_org"] in text
    assert "court.judgment_defaulter[active]" in text
    assert not list(tmp_path.iterdir())  # no database was made
