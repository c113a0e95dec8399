"""A throwaway PostgreSQL cluster for tests and benchmarks: ``initdb`` and ``pg_ctl`` in a
temporary directory, listening on a free loopback port (and a unix socket in that
directory), run as an unprivileged user when we are root (PostgreSQL refuses to run as
root), stopped and removed afterwards.

The superuser ``postgres`` logs in over TCP with a password (``PASSWORD``), so that tests
can check that a database URL's password never shows in a message.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

USER = "postgres"
PASSWORD = "pg-test-secret-4711"
# Debian installs the server outside PATH.
SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/bin")


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (the newest Debian version first),
    or None when no PostgreSQL server is installed."""
    candidates: list[Path] = []
    for pattern in SEARCH:
        root = Path(pattern.split("*")[0])
        if "*" in pattern:
            if root.is_dir():
                versions = sorted(root.iterdir(), key=lambda p: _version(p.name), reverse=True)
                candidates += [v / "bin" for v in versions]
        else:
            candidates.append(root)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _runas() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that drops root, and the user it becomes (None: not root)."""
    if os.geteuid() != 0:
        return [], None
    for name in (USER, "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", name, "--"], user
        setpriv = shutil.which("setpriv")
        if setpriv:
            return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                    "--init-groups", "--"], user
    raise RuntimeError("running as root without a 'postgres' or 'nobody' user, or runuser/"
                       "setpriv, to run PostgreSQL as: it refuses to run as root")


class Cluster:
    """One running PostgreSQL cluster.

    Args:
        bindir: where ``initdb`` and ``pg_ctl`` are.
        durable: keep fsync on (benchmarks); tests turn it off, as a crash of the whole
            machine is not what they test.
    """

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.port = 0
        # Not under pytest's tmp_path: its parents are private to root, and the server
        # runs as another user.
        self.root = Path(tempfile.mkdtemp(prefix="credit-check-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._prefix, self._user = _runas()
        self._started = False

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._prefix, *map(str, args)], capture_output=True, text=True,
                              check=check, timeout=120, cwd=self.root)

    def start(self) -> Cluster:
        """initdb, then start the server on a free loopback port and wait for it."""
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._user is not None:
            os.chmod(self.root, 0o700)
            for path in (self.root, pwfile):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        try:
            self._run(self.bindir / "initdb", "-D", self.data, "-U", USER, "-E", "UTF8",
                      "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                      f"--pwfile={pwfile}", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr or exc.stdout}") from None
        pwfile.unlink()
        options = ["-p {port}", "-c listen_addresses=127.0.0.1",
                   f"-c unix_socket_directories={self.root}", "-c max_connections=200",
                   "-c shared_buffers=128MB"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off",
                        "-c full_page_writes=off"]
        for _ in range(5):  # a port taken between our probe and the server's bind: again
            self.port = free_port()
            result = self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                               "-t", "60", "-o", " ".join(options).format(port=self.port),
                               "start", check=False)
            if result.returncode == 0:
                self._started = True
                return self
        raise RuntimeError(f"PostgreSQL did not start: {self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""

    def url(self, dbname: str = "postgres", *, password: str | None = PASSWORD) -> str:
        """A ``postgresql://`` URL of a database of this cluster."""
        auth = f"{USER}:{password}" if password is not None else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (its sessions ended first)."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (it is ours: by its data directory) and remove everything."""
        if self._started:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                      "stop", check=False)
            self._started = False
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

