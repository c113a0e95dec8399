"""Settings: explicit arguments never read the environment, from_env does, and malformed
values (fallback spec included) fail with the variable's name."""

from __future__ import annotations

import pytest

from credit_check._exceptions import ConfigurationError
from credit_check._models import Outcome, Scenario
from credit_check._settings import FallbackPolicy, Settings


def test_explicit_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_CHECK_BASE_URL", "http://from-env")
    assert Settings.explicit().base_url is None
    assert Settings.explicit(base_url="http://x").base_url == "http://x"


def test_from_env_reads_prefixed_variables_and_overrides_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDIT_CHECK_BASE_URL", "http://from-env")
    monkeypatch.setenv("CREDIT_CHECK_API_KEY", "k")
    monkeypatch.setenv("CREDIT_CHECK_DEPARTMENT", "市市场监管局")
    monkeypatch.setenv("CREDIT_CHECK_PILOT_CODES", "A, B")
    monkeypatch.setenv("CREDIT_CHECK_LISTED_TTL", "30")
    s = Settings.from_env(department="override")
    assert s.require() == ("http://from-env", "k", "override")
    assert s.pilot_codes == ("A", "B")
    assert s.listed_ttl == 30


def test_malformed_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_CHECK_LISTED_TTL", "soon")
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_LISTED_TTL"):
        Settings.from_env()


def test_secret_is_not_shown() -> None:
    s = Settings.explicit(api_key="very-secret")
    assert "very-secret" not in repr(s)


@pytest.mark.parametrize(
    ("missing", "name"),
    [({"base_url": None}, "BASE_URL"), ({"api_key": None}, "API_KEY"),
     ({"department": " "}, "DEPARTMENT")],
)
def test_require_names_the_missing_setting(missing: dict[str, str | None], name: str) -> None:
    values = {"base_url": "http://x", "api_key": "k", "department": "d"} | missing
    with pytest.raises(ConfigurationError, match=f"CREDIT_CHECK_{name}"):
        Settings.explicit(**values).require()


def test_fallback_single_default() -> None:
    policy = FallbackPolicy.parse("deny")
    assert policy.outcome(Scenario.LICENSING) is Outcome.DENY


def test_fallback_per_scenario_with_review_default() -> None:
    policy = FallbackPolicy.parse("procurement=deny,licensing=allow")
    assert policy.outcome(Scenario.PROCUREMENT) is Outcome.DENY
    assert policy.outcome(Scenario.LICENSING) is Outcome.ALLOW
    assert policy.outcome(Scenario.SUBSIDY) is Outcome.REVIEW


def test_fallback_default_plus_overrides_tolerates_case_and_spaces() -> None:
    policy = FallbackPolicy.parse(" Allow , Procurement = DENY ")
    assert policy.outcome(Scenario.HONOR) is Outcome.ALLOW
    assert policy.outcome(Scenario.PROCUREMENT) is Outcome.DENY


def test_fallback_may_name_a_catalogue_scenario_outside_the_known_set() -> None:
    policy = FallbackPolicy.parse("review,franchise=deny")
    assert policy.outcome("franchise") is Outcome.DENY
    assert policy.outcome(Scenario.PROCUREMENT) is Outcome.REVIEW


@pytest.mark.parametrize(
    "spec",
    ["", "maybe", "procurement=maybe", "shop ping=deny", "特许经营=deny", "review,allow",
     "review,,deny",
     "procurement=deny,procurement=review", "green_channel"],
)
def test_malformed_fallback_spec_names_the_variable(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_FALLBACK"):
        FallbackPolicy.parse(spec)


def test_the_deployment_region_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDIT_CHECK_REGION", "210902")
    assert Settings.from_env().region == "210902"
    for bad in ("21", "2109", "0109021", "辽宁"):
        monkeypatch.setenv("CREDIT_CHECK_REGION", bad)
        with pytest.raises(ConfigurationError, match="CREDIT_CHECK_REGION"):
            Settings.from_env()
