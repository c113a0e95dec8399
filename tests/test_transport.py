"""The HTTP transport: timeouts, refused connections, 5xx and 429 retried with backoff or
Retry-After, 4xx never retried, malformed JSON translated; nothing from requests leaks."""

from __future__ import annotations

import socket

import pytest
import requests
import responses

from credit_check._breaker import BreakerState, CircuitBreaker, CircuitOpen
from credit_check._exceptions import (
    ConfigurationError,
    InvalidServiceData,
    ServiceRejected,
    ServiceUnavailable,
)
from credit_check._transport import Transport, retry_after_seconds

BASE = "http://list.test"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def transport(retries: int = 2, **kw: object) -> tuple[Transport, Sleeps]:
    sleeps = Sleeps()
    return Transport(BASE, "key", retries=retries, sleep=sleeps, **kw), sleeps  # type: ignore[arg-type]


@responses.activate
def test_success_returns_status_headers_and_json_with_bearer_key() -> None:
    responses.get(f"{BASE}/v1/keys", json={"keys": []}, headers={"ETag": '"1"'})
    t, _ = transport()
    resp = t.request("GET", "/v1/keys")
    assert resp.status == 200 and resp.body == {"keys": []} and resp.headers["ETag"] == '"1"'
    assert responses.calls[0].request.headers["Authorization"] == "Bearer key"


@responses.activate
def test_a_timeout_opens_the_breaker_at_once_so_it_is_not_retried() -> None:
    # Each retry would cost the waiting caller the whole read timeout again.
    responses.get(f"{BASE}/v1/x", body=requests.exceptions.ReadTimeout("slow"))
    t, sleeps = transport(retries=2)
    with pytest.raises(ServiceUnavailable, match="ReadTimeout"):
        t.request("GET", "/v1/x")
    assert len(responses.calls) == 1 and not sleeps and t.breaker.state is BreakerState.OPEN


@responses.activate
def test_a_refused_connection_is_retried_then_unavailable() -> None:
    responses.get(f"{BASE}/v1/x", body=requests.exceptions.ConnectionError("refused"))
    t, sleeps = transport(retries=2)
    with pytest.raises(ServiceUnavailable, match="ConnectionError"):
        t.request("GET", "/v1/x")
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_connect_timeout_is_unavailable() -> None:
    responses.get(f"{BASE}/v1/x", body=requests.exceptions.ConnectTimeout("no route"))
    t, _ = transport(retries=0)
    with pytest.raises(ServiceUnavailable):
        t.request("GET", "/v1/x")


def test_refused_connection_on_loopback_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    t = Transport(f"http://127.0.0.1:{port}", "key", retries=1, sleep=sleeps)
    with pytest.raises(ServiceUnavailable, match="ConnectionError") as info:
        t.request("GET", "/v1/keys")
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)
    assert len(sleeps) == 1
    t.close()


@responses.activate
def test_500_is_retried_and_a_later_success_returned() -> None:
    responses.get(f"{BASE}/v1/x", status=500)
    responses.get(f"{BASE}/v1/x", status=503)
    responses.get(f"{BASE}/v1/x", json={"ok": True})
    t, sleeps = transport(retries=2)
    assert t.request("GET", "/v1/x").body == {"ok": True}
    assert len(sleeps) == 2
    assert all(0 <= s <= 5 for s in sleeps)


@responses.activate
def test_persistent_500_is_unavailable_with_the_status() -> None:
    responses.get(f"{BASE}/v1/x", status=500)
    t, _ = transport(retries=1)
    with pytest.raises(ServiceUnavailable, match="500"):
        t.request("GET", "/v1/x")


@responses.activate
def test_429_waits_for_retry_after() -> None:
    responses.get(f"{BASE}/v1/x", status=429, headers={"Retry-After": "3"})
    responses.get(f"{BASE}/v1/x", json={})
    t, sleeps = transport(retries=1)
    t.request("GET", "/v1/x")
    assert sleeps == [3.0]


@responses.activate
def test_long_retry_after_is_capped() -> None:
    responses.get(f"{BASE}/v1/x", status=429, headers={"Retry-After": "3600"})
    t, sleeps = transport(retries=1, max_backoff=2.0)
    with pytest.raises(ServiceUnavailable, match="429"):
        t.request("GET", "/v1/x")
    assert sleeps == [2.0]


def test_retry_after_parses_http_dates_and_rejects_junk() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
@responses.activate
def test_4xx_is_never_retried_and_carries_the_problem_detail(status: int) -> None:
    responses.get(f"{BASE}/v1/x", status=status, json={"detail": "bad thing"},
                  content_type="application/problem+json")
    t, sleeps = transport(retries=3)
    with pytest.raises(ServiceRejected, match="bad thing") as info:
        t.request("GET", "/v1/x")
    assert info.value.status_code == status
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_ok_statuses_are_returned_not_raised() -> None:
    responses.get(f"{BASE}/v1/snapshot", status=410, json={"detail": "gone"})
    responses.get(f"{BASE}/v1/catalog", status=304)
    t, _ = transport()
    assert t.request("GET", "/v1/snapshot", ok=(200, 410)).status == 410
    assert t.request("GET", "/v1/catalog", ok=(200, 304)).body is None


@responses.activate
def test_malformed_json_is_invalid_service_data() -> None:
    responses.get(f"{BASE}/v1/x", body="{not json", content_type="application/json")
    t, _ = transport()
    with pytest.raises(InvalidServiceData, match="malformed JSON"):
        t.request("GET", "/v1/x")


@responses.activate
def test_per_call_retries_override() -> None:
    responses.get(f"{BASE}/v1/x", status=503)
    t, sleeps = transport(retries=5)
    with pytest.raises(ServiceUnavailable):
        t.request("GET", "/v1/x", retries=0)
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_tls_failure_is_unavailable_and_points_at_the_ca_bundle() -> None:
    responses.get(f"{BASE}/v1/x", body=requests.exceptions.SSLError("bad cert"))
    t, _ = transport()
    with pytest.raises(ServiceUnavailable, match="CA_BUNDLE"):
        t.request("GET", "/v1/x")


@pytest.mark.parametrize("url", ["", "ftp://x", "list.test"])
def test_bad_base_url_names_the_setting(url: str) -> None:
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_BASE_URL"):
        Transport(url, "key")


def test_missing_api_key_and_ca_bundle_are_named(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_API_KEY"):
        Transport(BASE, "")
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_CA_BUNDLE"):
        Transport(BASE, "k", ca_bundle="/nonexistent/ca.pem")


def test_turning_verification_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    Transport(BASE, "k", verify=False)
    assert "verification is OFF" in caplog.text


@responses.activate
def test_every_call_declares_the_catalogue_schema_it_understands() -> None:
    responses.get(f"{BASE}/v1/catalog", json={})
    t, _ = transport()
    t.request("GET", "/v1/catalog")
    assert responses.calls[0].request.headers["X-Credit-Check-Schema"] == "2"


@responses.activate
def test_after_consecutive_failures_calls_fail_at_once_without_the_network() -> None:
    responses.get(f"{BASE}/v1/x", body=requests.exceptions.ConnectionError("refused"))
    t, sleeps = transport(retries=2)
    with pytest.raises(ServiceUnavailable):
        t.request("GET", "/v1/x")  # three failed attempts open the breaker
    assert len(responses.calls) == 3
    with pytest.raises(CircuitOpen, match="circuit open"):
        t.request("GET", "/v1/x")
    assert len(responses.calls) == 3 and len(sleeps) == 2  # nothing sent, nothing waited
    assert t.breaker.state is BreakerState.OPEN


@responses.activate
def test_a_probe_after_the_cooldown_closes_the_breaker_when_the_service_answers() -> None:
    timer = [0.0]
    t, _ = transport(retries=0, breaker=CircuitBreaker(threshold=1, cooldown=5.0,
                                                       timer=lambda: timer[0]))
    down = responses.get(f"{BASE}/v1/x", body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(ServiceUnavailable):
        t.request("GET", "/v1/x")
    responses.remove(down)
    responses.get(f"{BASE}/v1/x", json={"ok": True})
    with pytest.raises(CircuitOpen):
        t.request("GET", "/v1/x")  # still cooling down
    timer[0] = 5.0
    assert t.request("GET", "/v1/x").body == {"ok": True}  # the probe
    assert t.breaker.state is BreakerState.CLOSED
    assert len(responses.calls) == 2


@responses.activate
def test_a_4xx_answer_proves_the_service_is_up_and_resets_the_count() -> None:
    t, _ = transport(retries=0, breaker=CircuitBreaker(threshold=2))
    responses.get(f"{BASE}/v1/down", body=requests.exceptions.ConnectionError("refused"))
    responses.get(f"{BASE}/v1/missing", status=404, json={"detail": "no"})
    with pytest.raises(ServiceUnavailable):
        t.request("GET", "/v1/down")
    with pytest.raises(ServiceRejected):
        t.request("GET", "/v1/missing")
    with pytest.raises(ServiceUnavailable):
        t.request("GET", "/v1/down")
    assert t.breaker.state is BreakerState.CLOSED  # 1 failure, an answer, 1 failure
