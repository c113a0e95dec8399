"""The HTTP transport to the list service: one ``requests.Session``, timeouts, retries with
backoff and jitter, and translation of every ``requests`` / JSON failure into our errors.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from credit_check._breaker import CircuitBreaker, CircuitOpen
from credit_check._exceptions import (
    ConfigurationError,
    InvalidServiceData,
    ServiceRejected,
    ServiceUnavailable,
)

logger = logging.getLogger("credit_check.transport")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "credit-check/0.1"
# The catalogue schema this SDK understands (protocol v1.1, DESIGN §9.0).
CATALOG_SCHEMA = 2


@dataclass(frozen=True, slots=True)
class Response:
    """A service answer: status, headers and the parsed JSON body (None when empty)."""

    status: int
    headers: Mapping[str, str]
    body: Any


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _problem_detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or ""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or "")
    return ""


class Transport:
    """Calls the list service over HTTP with one session, retries and clear errors.

    Args:
        base_url: the service root, e.g. ``https://credit.example.gov.cn``.
        api_key: the department API key, sent as a Bearer token.
        connect_timeout, read_timeout: seconds, for every call.
        retries: how many times a connection error, 502/503/504 or 429 is retried.
        backoff: the first retry delay in seconds; doubled each time, with full jitter.
        max_backoff: the cap on one delay (a longer Retry-After is capped too).
        verify: verify TLS certificates (default). False needs to be asked for and logs a
            warning.
        ca_bundle: a CA bundle file to verify against instead of the system store.
        breaker: the circuit breaker every attempt goes through (rule 9); a default one
            when not given. Each attempt that cannot reach the service counts as a
            failure; a call answered 5xx/429 counts once, after its retries.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        verify: bool = True,
        ca_bundle: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                "CREDIT_CHECK_BASE_URL: must be an http:// or https:// URL of the list service"
            )
        if not api_key:
            raise ConfigurationError(
                "CREDIT_CHECK_API_KEY: missing; ask the platform for your department's API key"
            )
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise ConfigurationError(f"CREDIT_CHECK_CA_BUNDLE: no such file {ca_bundle!r}")
        if not verify:
            logger.warning(
                "TLS certificate verification is OFF for %s: only for a test network", base_url
            )
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._verify: bool | str = ca_bundle if (verify and ca_bundle) else verify
        self._sleep = sleep
        self.breaker = breaker or CircuitBreaker()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._session = self._new_session()
        # Metrics and traces (credit_check._metrics), when enabled: called after each
        # answered call with (method, path, status, seconds, body); spans per call.
        self.observe: Callable[[str, str, int, float, Any], None] | None = None
        self.tracer: Any = None

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self._api_key}"
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        session.headers["X-Credit-Check-Schema"] = str(CATALOG_SCHEMA)
        session.verify = self._verify
        return session

    def _current_session(self) -> requests.Session:
        # A forked child must not share the parent's pooled sockets.
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._session = self._new_session()
                    self._pid = os.getpid()
        return self._session

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: Collection[int] = (200,),
        retries: int | None = None,
        label: str | None = None,
    ) -> Response:
        """Send one call, retrying what may be retried (in a span when traced).

        Args:
            json_body: a value sent as JSON.
            content: a body that is JSON text already, sent as it is.
            ok: statuses returned to the caller (others raise), e.g. ``(200, 304, 410)``.
            retries: override the transport's retry count for this call.
            label: how error messages name the path, e.g. with a person's id masked.

        Raises:
            ServiceUnavailable: unreachable, timed out, or 5xx/429 after the retries.
            ServiceRejected: a 4xx answer not in ``ok``; never retried.
            InvalidServiceData: a body that is not JSON.
        """
        if self.tracer is not None:
            # The label, not the path: a person's id never reaches a span either.
            with self.tracer.span("credit_check.http", method=method, path=label or path):
                return self._request(method, path, json_body=json_body, content=content,
                                     params=params, headers=headers, ok=ok, retries=retries,
                                     label=label)
        return self._request(method, path, json_body=json_body, content=content,
                             params=params, headers=headers, ok=ok, retries=retries,
                             label=label)

    def _request(
        self, method: str, path: str, *, json_body: Any, content: bytes | None,
        params: Mapping[str, str] | None, headers: Mapping[str, str] | None,
        ok: Collection[int], retries: int | None, label: str | None,
    ) -> Response:
        url = self.base_url + path
        started = time.perf_counter()
        shown = label or path
        attempts = 1 + (self.retries if retries is None else retries)
        last = ""
        cause: Exception | None = None
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        breaker = self.breaker
        for attempt in range(attempts):
            if not breaker.allow():
                # Rule 9: while the service is known to be down, fail at once.
                why = f"; last: {last}" if last else ""
                raise CircuitOpen(
                    f"list service at {self.base_url} unavailable: circuit open after "
                    f"repeated failures, next probe in {breaker.retry_in:.1f} s "
                    f"({method} {shown} not sent{why})"
                ) from cause
            wait: float | None = None
            try:
                resp = self._current_session().request(
                    method, url, json=json_body, data=content, params=params, headers=headers,
                    timeout=self._timeout,
                )
            except requests.exceptions.SSLError as exc:
                self._failed()
                raise ServiceUnavailable(
                    f"TLS to {self.base_url} failed: {type(exc).__name__}; check "
                    "CREDIT_CHECK_CA_BUNDLE or the service certificate"
                ) from exc
            except requests.exceptions.RequestException as exc:
                self._failed(timed_out=isinstance(exc, requests.exceptions.Timeout))
                last = f"{type(exc).__name__} calling {method} {shown}"
                cause = exc
            except BaseException:
                breaker.release()
                raise
            else:
                if resp.status_code in ok:
                    self._answered()
                    answer = Response(resp.status_code, resp.headers, self._parse(resp, shown))
                    if self.observe is not None:
                        self.observe(method, path, resp.status_code,
                                     time.perf_counter() - started, answer.body)
                    return answer
                if resp.status_code not in RETRY_STATUSES and resp.status_code < 500:
                    self._answered()  # the service is up; our request was wrong
                    raise ServiceRejected(
                        f"{method} {shown} was refused with {resp.status_code}: "
                        f"{_problem_detail(resp) or resp.reason}",
                        status_code=resp.status_code,
                    )
                last = f"{method} {shown} answered {resp.status_code}"
                cause = None
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt + 1 < attempts and not breaker.is_open:
                self._sleep(self._delay(attempt, wait))
        if cause is None:
            # A 5xx/429 counts once, after the retries: an endpoint that fails while the
            # others answer must not cut the whole service off. An unreachable service
            # counts every attempt, so one failed call can open the breaker.
            self._failed()
        # Chain the last network error so a traceback shows what really happened.
        raise ServiceUnavailable(f"list service at {self.base_url} unavailable: {last}") from cause

    def _failed(self, *, timed_out: bool = False) -> None:
        if self.breaker.failure(timed_out=timed_out):
            logger.warning(
                "list service at %s unreachable: circuit breaker open; calls fail at once "
                "(checks get the fallback) until a probe gets through", self.base_url)

    def _answered(self) -> None:
        if self.breaker.success():
            logger.info("list service at %s answers again: circuit breaker closed",
                           self.base_url)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._max_backoff)
        return random.uniform(0, min(self._max_backoff, self._backoff * 2**attempt))

    @staticmethod
    def _parse(resp: requests.Response, path: str) -> Any:
        if resp.status_code == 304 or not resp.content:
            return None
        try:
            return json.loads(resp.content)
        except ValueError as exc:
            raise InvalidServiceData(f"{path}: the service answered with malformed JSON") from exc

    def close(self) -> None:
        """Close the session's pooled connections."""
        self._session.close()
