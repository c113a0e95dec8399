"""The sender as a child process of the application (the default): the process that takes
the data directory's sender role starts ``python -m credit_check._outbox``, hands
it the role (the locked file descriptor) and its settings (on a pipe, never in the
environment or the command line), and waits for it. So the sender's work — decrypting,
signing, SQLite, HTTP — never holds the request threads' GIL.

The child exits when its parent goes (it watches its parent's pid), on SIGTERM (delivering
for a bounded time first), or when its role is handed back; the lock goes with it, and the
next process that asks takes the role again. A child that cannot be started (no Python
executable to run, a crash loop) is logged, and the sender runs in a thread instead.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credit_check._outbox._outbox import Outbox
from credit_check._roles import RoleLock
from credit_check._settings import Settings

logger = logging.getLogger("credit_check.outbox")

ROLE_RETRY = 1.0
# A child that dies this soon after its start counts as a failed start.
FAILED_START = 5.0
MAX_FAILED_STARTS = 3


def sender_config(settings: Settings) -> dict[str, Any]:
    """What the sender process needs of a Checker's settings."""
    key = settings.encryption_key
    api_key = settings.api_key
    return {
        "data_dir": str(settings.data_dir.expanduser()), "base_url": settings.base_url,
        "api_key": api_key.get_secret_value() if api_key else "",
        "encryption_key": key.get_secret_value() if key else None,
        "verify": settings.verify, "ca_bundle": settings.ca_bundle,
        "connect_timeout": settings.connect_timeout, "read_timeout": settings.read_timeout,
        "watch_limit": settings.watch_limit,
        "lift_retention": settings.lift_retention_days * 86400.0,
    }


class SenderProcess:
    """Keeps the data directory's sender running in a child of this process while this
    process holds the sender role.

    Args:
        outbox: this process's outbox (its role lock, and the in-process sender used when
            no child can run).
        config: what the child needs to deliver: ``data_dir``, ``base_url``, ``api_key``,
            ``encryption_key`` (or None: the data directory's key file), ``verify``,
            ``ca_bundle``, ``connect_timeout``, ``read_timeout``.
        start_thread_sender: called once to fall back to the in-process sender thread.
    """

    def __init__(self, outbox: Outbox, config: dict[str, Any],
                 start_thread_sender: Callable[[], None]) -> None:
        self._outbox = outbox
        self._config = config
        self._fallback = start_thread_sender
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()
        self.failed_starts = 0

    @property
    def child_pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def start(self) -> None:
        """Start (again, in a forked child) the thread that keeps the sender running."""
        if self._pid != os.getpid():  # a fork: the parent's child and thread are not ours
            self._pid, self._child, self._thread = os.getpid(), None, None
            self._stop = threading.Event()
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="credit-check-outbox-process",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        role = self._outbox.role
        while not self._stop.is_set():
            if not role.try_acquire():
                self._stop.wait(ROLE_RETRY)
                continue
            started = time.monotonic()
            try:
                self._child = self._spawn(role)
            except OSError as exc:
                role.release()
                self._failed(f"cannot start the sender process: {exc}")
                if self.failed_starts >= MAX_FAILED_STARTS:
                    return
                continue
            role.release()  # the child holds the role now: only our copy goes
            code = self._child.wait()
            if self._stop.is_set():
                return
            if time.monotonic() - started < FAILED_START:
                self._failed(f"the sender process exited at once (exit code {code})")
                if self.failed_starts >= MAX_FAILED_STARTS:
                    return
            else:
                self.failed_starts = 0
                logger.warning("feedback outbox: the sender process exited (exit code %s); "
                               "starting another", code)

    def _failed(self, why: str) -> None:
        self.failed_starts += 1
        if self.failed_starts >= MAX_FAILED_STARTS:
            logger.error("feedback outbox: %s — %d times; delivering from a thread of this "
                         "process instead", why, self.failed_starts)
            self._fallback()
        else:
            logger.error("feedback outbox: %s; retrying", why)
            self._stop.wait(ROLE_RETRY * self.failed_starts)

    def _spawn(self, role: RoleLock) -> subprocess.Popen[bytes]:
        fd = role.fileno()
        if not sys.executable:
            raise OSError("no Python executable to run it (sys.executable is empty)")
        child = subprocess.Popen(
            [sys.executable, "-m", "credit_check._outbox"],
            stdin=subprocess.PIPE, pass_fds=(fd,), close_fds=True)
        assert child.stdin is not None
        config = {**self._config, "role_fd": fd, "parent_pid": os.getpid()}
        try:
            child.stdin.write(json.dumps(config).encode() + b"\n")
            child.stdin.close()
        except OSError:
            child.kill()
            child.wait()
            raise
        return child

    def close(self, timeout: float) -> None:
        """Stop the child (it delivers for at most ``timeout`` seconds first) and the
        thread."""
        self._stop.set()
        child = self._child
        if child is not None and self._pid == os.getpid() and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout + 5.0)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)


def main() -> int:
    """The child: deliver the data directory's feedback until told to stop."""
    from credit_check._crypto import FieldCipher, feedback_key
    from credit_check._datadir import DataDir
    from credit_check._lifecycle._index import local_indexer
    from credit_check._transport import Transport

    config = json.loads(sys.stdin.readline())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's ^C is for the parent
    parent = int(config["parent_pid"])
    data_dir = DataDir(config["data_dir"])
    key = config.get("encryption_key")
    cipher = FieldCipher.from_text(key) if key else data_dir.cipher(None)
    transport = Transport(config["base_url"], config["api_key"],
                          connect_timeout=config["connect_timeout"],
                          read_timeout=config["read_timeout"], verify=config["verify"],
                          ca_bundle=config["ca_bundle"])
    outbox = Outbox(Path(config["data_dir"]), cipher=cipher,
                    hmac_key=feedback_key(config["api_key"]))
    outbox.role.adopt(int(config["role_fd"]))

    def watch_parent() -> None:
        while not stop.wait(0.5):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    # The follow-up's watches are made here, from what was just imported: reading the
    # records again costs the application's process (its GIL) nothing.
    indexer = local_indexer(Path(config["data_dir"]), outbox, cipher,
                            watch_limit=int(config["watch_limit"]),
                            lift_retention=float(config["lift_retention"]))
    sender = outbox.attach_sender(transport, after_import=indexer.index)
    try:
        sender.run_forever(stop)
    finally:
        sender.close(float(config.get("stop_timeout", 5.0)))
        outbox.close(0.0)
        transport.close()
    return 0

