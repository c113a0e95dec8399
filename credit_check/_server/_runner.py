"""Running the sandbox: its data directory (signing key, derived demo and admin keys), the
demo data load, and :class:`SandboxServer`, a uvicorn server on a loopback thread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path
from typing import Any

from credit_check._crypto import Signer
from credit_check._exceptions import ConfigurationError
from credit_check._models import Catalog, ListEntry
from credit_check._pg import is_postgres_url, redact
from credit_check._server import _demo
from credit_check._server._app import create_app
from credit_check._server._keyfiles import (
    data_key,
    read_key_file,
    read_or_create,
    signing_key_file,
)
from credit_check._server._personal import PersonalData
from credit_check._server._sqlite import SQLiteStore
from credit_check._server._store import Store, entry_row

logger = logging.getLogger("credit_check.sandbox")

DEMO_DEPARTMENT = "示范市行政审批局"
DATA_KEY_ENV = "CREDIT_CHECK_SANDBOX_DATA_KEY"
DATA_KEY_FILE_ENV = "CREDIT_CHECK_SANDBOX_DATA_KEY_FILE"
SIGNING_KEY_FILE_ENV = "CREDIT_CHECK_SIGNING_KEY_FILE"
ADMIN_KEY_FILE_ENV = "CREDIT_CHECK_ADMIN_KEY_FILE"


def load_signer(db_path: Path) -> Signer:
    """The service's Ed25519 key, made on first start beside the database (mode 0600);
    processes starting together all get the one that was written first."""
    raw = read_or_create(signing_key_file(db_path), lambda: Signer.generate().private_bytes(),
                         "signing key")
    return Signer.from_bytes(raw)


def derived_key(signer: Signer, purpose: str) -> str:
    """A key that stays the same for one sandbox data directory, without storing it."""
    digest = hmac.new(signer.private_bytes(), purpose.encode(), hashlib.sha256).hexdigest()
    return f"cc_{purpose.split('-')[0]}_{digest[:40]}"


def _given(path: str | os.PathLike[str] | None, env: str) -> Path | None:
    text = os.fspath(path) if path is not None else os.environ.get(env, "")
    return Path(text) if text else None


def open_keys(db: str | Path, *, signing_key: str | os.PathLike[str] | None = None,
              data_key_file: str | os.PathLike[str] | None = None
              ) -> tuple[Signer, PersonalData]:
    """The signing key and the data key of a sandbox database.

    Given as files (``signing_key``/``CREDIT_CHECK_SIGNING_KEY_FILE``,
    ``data_key_file``/``CREDIT_CHECK_SANDBOX_DATA_KEY_FILE``, or the data key as
    ``CREDIT_CHECK_SANDBOX_DATA_KEY``), they are read; else a SQLite database keeps them
    beside its file, made on first start. A PostgreSQL database is shared by every
    instance, so its keys are never made by an instance: they must be given.

    Raises:
        ConfigurationError: a key is missing (PostgreSQL) or malformed.
    """
    signing_path = _given(signing_key, SIGNING_KEY_FILE_ENV)
    data_path = _given(data_key_file, DATA_KEY_FILE_ENV)
    shared = is_postgres_url(db)
    if signing_path is not None:
        signer = Signer.from_bytes(read_key_file(signing_path, "signing key",
                                                 "--signing-key"))
    elif shared:
        raise ConfigurationError(
            f"{redact(str(db))}: a PostgreSQL database is shared by every instance, so no "
            "instance makes a signing key for it: make one once with 'credit-check serve "
            "keygen FILE' and give every instance that file with --signing-key FILE or "
            f"{SIGNING_KEY_FILE_ENV}")
    else:
        signer = load_signer(Path(db))
    env_data_key = os.environ.get(DATA_KEY_ENV)
    if data_path is not None:
        raw = read_key_file(data_path, "sandbox data key", "--data-key")
    elif shared and not (env_data_key or "").strip():
        raise ConfigurationError(
            f"{redact(str(db))}: a PostgreSQL database is shared by every instance, so no "
            "instance makes a data key for it: make one once with 'credit-check serve "
            "keygen --data-key FILE' and give every instance that file with --data-key FILE "
            f"or {DATA_KEY_FILE_ENV} (or its base64 text as {DATA_KEY_ENV})")
    else:
        raw = data_key(Path(db), env_data_key)
    return signer, PersonalData(raw)


def _admin_key_file() -> str | None:
    # A secret mounted as a file (containers): CREDIT_CHECK_ADMIN_KEY_FILE.
    path = os.environ.get(ADMIN_KEY_FILE_ENV)
    if not path:
        return None
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigurationError(f"{ADMIN_KEY_FILE_ENV} {path}: cannot read it: {exc}") from None
    if not text:
        raise ConfigurationError(f"{ADMIN_KEY_FILE_ENV} {path}: the file is empty")
    return text


def open_sandbox(db_path: str | Path, *, demo: bool, admin_key: str | None = None,
                 signing_key: str | os.PathLike[str] | None = None,
                 data_key_file: str | os.PathLike[str] | None = None
                 ) -> tuple[Store, Signer, str, str]:
    """Open (and on first use, fill) a sandbox database: store, signer, admin and demo key.

    Args:
        db_path: a SQLite file, or a ``postgresql://`` URL.
        signing_key, data_key_file: key files (see :func:`open_keys`).

    Safe for several processes opening the same database at once (``--workers N``, or
    several instances on one PostgreSQL database): keys are made first-writer-wins (or
    given), the schema is made or migrated once, the demo data loaded once.

    Raises:
        ConfigurationError: a key file or ``CREDIT_CHECK_SANDBOX_DATA_KEY`` is bad or
            missing, the data key is not the database's, or the database cannot be reached.
    """
    store: Store
    if is_postgres_url(db_path):
        from credit_check._server._postgres import PostgresStore

        url = str(db_path)
        signer, personal = open_keys(url, signing_key=signing_key,
                                     data_key_file=data_key_file)
        store = PostgresStore(url, signer, personal)
    else:
        db_path = Path(db_path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        signer, personal = open_keys(db_path, signing_key=signing_key,
                                     data_key_file=data_key_file)
        store = SQLiteStore(db_path, signer, personal)
    try:
        if store.catalog() is None:
            store.put_catalog(Catalog.load(_demo.demo_catalog()), if_none=True)
        demo_key = derived_key(signer, "demo-key")
        store.create_key(DEMO_DEPARTMENT, True, api_key=demo_key)
        if demo and store.meta("demo_loaded") is None:
            entries, subjects = _demo.build()
            store.upsert([entry_row(ListEntry.model_validate(e)) for e in entries], subjects,
                         once="demo_loaded")
    except BaseException:
        store.close()
        raise
    admin = admin_key or os.environ.get("CREDIT_CHECK_ADMIN_KEY") or _admin_key_file() \
        or derived_key(signer, "admin-key")
    return store, signer, admin, demo_key


def rotate_signing_key(db: str | Path, new_key_file: str | os.PathLike[str], *,
                       signing_key: str | os.PathLike[str] | None = None,
                       data_key_file: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Make the key in ``new_key_file`` (from ``credit-check serve keygen``) the service's
    signing key; the old one stays listed by ``GET /v1/keys`` as previous, so receipts it
    signed stay verifiable. Every instance must then be (re)started with the new key.

    With SQLite and no ``signing_key`` given, the key file beside the database is
    replaced (the old key kept beside it as ``….retired-<key id>``). Running it again after
    an interruption finishes the job.

    Raises:
        ConfigurationError: a key file is missing or bad, the new key is the old one or was
            retired before, or the database cannot be opened.
    """
    from credit_check._datadir import write_private
    from credit_check._receipts import key_id
    from credit_check._server._store import StoreError

    new = Signer.from_bytes(read_key_file(Path(new_key_file), "new signing key",
                                          "rotate-key"))
    shared = is_postgres_url(db)
    path = None if shared else Path(db)
    beside = path is not None and signing_key is None \
        and not os.environ.get(SIGNING_KEY_FILE_ENV)
    if beside and path is not None and signing_key_file(path).exists() \
            and signing_key_file(path).read_bytes() == new.private_bytes():
        return {"kid": key_id(new.public_key), "public_key": new.public_key}  # done before
    old, personal = open_keys(db, signing_key=signing_key, data_key_file=data_key_file)
    if old.public_key == new.public_key:
        raise ConfigurationError("rotate-key: the new key is the key in use; make a new one "
                                 "with 'credit-check serve keygen FILE'")
    store: Store
    if shared:
        from credit_check._server._postgres import PostgresStore

        store = PostgresStore(str(db), old, personal)
    else:
        assert path is not None
        store = SQLiteStore(path, old, personal)
    try:
        store.rotate_signing_key(new)
    except StoreError as exc:
        raise ConfigurationError(f"rotate-key: {exc}") from None
    finally:
        store.close()
    if beside and path is not None:
        current = signing_key_file(path)
        retired = current.with_name(f"{current.name}.retired-{key_id(old.public_key)}")
        if not retired.exists():
            write_private(retired, old.private_bytes())
        write_private(current, new.private_bytes())
    return {"kid": key_id(new.public_key), "public_key": new.public_key,
            "previous_kid": key_id(old.public_key)}


class SandboxServer:
    """The sandbox list service on a background thread, for the demo and tests.

    Args:
        db_path: the SQLite file (its signing key is kept beside it), or a
            ``postgresql://`` URL (then ``signing_key`` and ``data_key`` are needed).
        demo: load the fictional demo data on first use.
        host, port: where to listen; port 0 picks a free port.
        admin_key: the admin key (default: ``CREDIT_CHECK_ADMIN_KEY`` or one derived from
            the signing key).
        signing_key, data_key: key files made by ``credit-check serve keygen``.
    """

    def __init__(self, db_path: str | Path, demo: bool = False, *, host: str = "127.0.0.1",
                 port: int = 0, admin_key: str | None = None,
                 signing_key: str | Path | None = None,
                 data_key: str | Path | None = None) -> None:
        self.db_path: str | Path = db_path if is_postgres_url(db_path) else Path(db_path)
        self._keys = (signing_key, data_key)
        self.demo = demo
        self.host = host
        self.port = port
        self._admin_key = admin_key
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self.admin_key = ""
        self.demo_key = ""
        self.public_key = ""

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Open the database and serve until :meth:`stop`."""
        import uvicorn

        store, signer, self.admin_key, self.demo_key = open_sandbox(
            self.db_path, demo=self.demo, admin_key=self._admin_key,
            signing_key=self._keys[0], data_key_file=self._keys[1])
        self._store = store
        self.public_key = signer.public_key
        config = uvicorn.Config(create_app(store, signer, self.admin_key), host=self.host,
                                port=self.port, log_level="warning", lifespan="off",
                                access_log=False)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, name="credit-check-sandbox",
                                        daemon=True)
        self._thread.start()
        waited = 0.0
        while not server.started:
            if not self._thread.is_alive() or waited > timeout:
                self.stop()
                raise RuntimeError(f"the sandbox did not start on {self.host}:{self.port}")
            self._thread.join(0.02)
            waited += 0.02
        self.port = server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop serving and close the database (the data stays)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None
        self._server = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
