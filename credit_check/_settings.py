"""The Checker's settings: ``CREDIT_CHECK_*`` environment variables (read only by
``Settings.from_env``) or keyword arguments, and the fallback specification of rule 9.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from credit_check._codes import CODE_RULE, check_region, scenario_code
from credit_check._exceptions import ConfigurationError
from credit_check._models import Outcome, Scenario

ENV_PREFIX = "CREDIT_CHECK_"
DEFAULT_DATA_DIR = "~/.credit-check"
# Set while Settings.explicit builds an instance: only the given values count then.
_EXPLICIT_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("explicit", default=False)
_FALLBACK_OUTCOMES = {o.value: o for o in (Outcome.DENY, Outcome.REVIEW, Outcome.RESTRICT,
                                          Outcome.ALLOW)}


def _sender_mode(value: Any) -> Any:
    # CREDIT_CHECK_SENDER=true/false (and True/False) still mean "deliver" / "don't".
    text = str(value).strip().lower()
    if value is True or text in {"true", "yes", "on", "1"}:
        return "process"
    if value is False or text in {"false", "no", "off", "0", "none"}:
        return "off"
    return text


def _split_codes(value: Any) -> Any:
    # The environment gives "A,B,C"; a caller may give any iterable of codes.
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Everything a :class:`~credit_check.Checker` can be configured with.

    Each field ``name`` is read from ``CREDIT_CHECK_<NAME>`` by :meth:`from_env`; the plain
    constructor (and :meth:`explicit`) never reads the environment.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid",
                                      validate_default=True)

    base_url: str | None = None
    api_key: SecretStr | None = None
    department: str | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    fallback: str = "review"
    encryption_key: SecretStr | None = None
    service_public_key: str | None = None
    feedback: bool = True
    sender: Annotated[Literal["process", "thread", "off"],
                      BeforeValidator(_sender_mode)] = "process"
    # postgresql://…: the outbox and post-check queue in that database, shared by every host
    outbox_url: SecretStr | None = None
    listed_ttl: float = Field(default=60.0, gt=0)
    not_listed_ttl: float = Field(default=300.0, gt=0)
    max_stale: float = Field(default=6 * 3600.0, ge=0)
    cache_size: int = Field(default=50_000, ge=1)
    sync_interval: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=2.0, gt=0)
    read_timeout: float = Field(default=5.0, gt=0)
    lookup_retries: int = Field(default=1, ge=0, le=5)
    verify: bool = True
    ca_bundle: str | None = None
    ready_timeout: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    max_data_age: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    breaker_cooldown: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    pilot_codes: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_codes)] = ()
    # The six-digit GB/T 2260 code of where this deployment handles cases: the default
    # Transaction.region, which selects the catalogue's provincial and city supplements.
    region: Annotated[str, AfterValidator(check_region)] | None = None
    # A catalogue to run in shadow (a JSON file), or "off"; unset: the service's staged
    # catalogue, when it stages one, is run in shadow.
    shadow_catalog: str | None = None
    # The case lifecycle (事中): the most open watches; how long a decision that applied a
    # measure is kept for lifting; the operator's working-day schedule (default: the data
    # directory's workdays.json when it exists).
    watch_limit: int = Field(default=1_000_000, ge=1)
    lift_retention_days: float = Field(default=365.0, gt=0, allow_inf_nan=False)
    workdays_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _EXPLICIT_ONLY.get():
            return (init_settings,)
        return (init_settings, env_settings)

    @classmethod
    def explicit(cls, **values: Any) -> Settings:
        """Settings from keyword arguments only (None means "the default").

        Raises:
            ConfigurationError: a value is malformed; the message names the variable.
        """
        given = {k: v for k, v in values.items() if v is not None}
        token = _EXPLICIT_ONLY.set(True)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigurationError(describe(exc)) from None
        finally:
            _EXPLICIT_ONLY.reset(token)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from ``CREDIT_CHECK_*`` variables, with ``overrides`` taking precedence.

        Raises:
            ConfigurationError: a variable is malformed; the message names it.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigurationError(describe(exc)) from None

    def require(self) -> tuple[str, str, str]:
        """The base URL, API key and department, each present.

        Raises:
            ConfigurationError: naming the first missing setting.
        """
        if not self.base_url:
            raise ConfigurationError(
                "CREDIT_CHECK_BASE_URL: missing; set it to the list service root URL"
            )
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ConfigurationError(
                "CREDIT_CHECK_API_KEY: missing; ask the platform for your department's API key"
            )
        if not self.department or not self.department.strip():
            raise ConfigurationError(
                "CREDIT_CHECK_DEPARTMENT: missing; name the implementing department that "
                "applies the measures"
            )
        return self.base_url, self.api_key.get_secret_value(), self.department.strip()


def describe(exc: ValidationError) -> str:
    """A message naming each bad variable (``CREDIT_CHECK_<FIELD>``) without its value."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = str(err["loc"][0]) if err["loc"] else "settings"
        parts.append(f"{ENV_PREFIX}{field.upper()}: {err['msg']}")
    return "; ".join(parts)


class FallbackPolicy:
    """Rule 9's per-scenario fallback outcomes, parsed from a spec.

    The spec is ``review``, or ``procurement=deny,licensing=review``, or a default followed
    by overrides: ``review,procurement=deny``. Scenarios not named take the default
    (``review`` when the spec gives none).
    """

    __slots__ = ("default", "overrides")

    def __init__(self, default: Outcome, overrides: dict[str, Outcome]) -> None:
        self.default = default
        self.overrides = overrides

    @classmethod
    def parse(cls, spec: str) -> FallbackPolicy:
        """Parse a spec.

        Raises:
            ConfigurationError: naming CREDIT_CHECK_FALLBACK and the part that is wrong.
        """
        default: Outcome | None = None
        overrides: dict[str, Outcome] = {}
        allowed = ", ".join(_FALLBACK_OUTCOMES)
        parts = [p.strip() for p in spec.split(",")]
        if not spec.strip() or any(not p for p in parts):
            raise ConfigurationError(
                f"CREDIT_CHECK_FALLBACK: {spec!r} has an empty part; use e.g. "
                "'review' or 'review,procurement=deny'"
            )
        for part in parts:
            name, sep, value = part.partition("=")
            name, value = name.strip().lower(), value.strip().lower()
            if not sep:
                if default is not None:
                    raise ConfigurationError(
                        f"CREDIT_CHECK_FALLBACK: {spec!r} gives two defaults; "
                        "give one, then scenario=outcome pairs"
                    )
                value = name
            outcome = _FALLBACK_OUTCOMES.get(value)
            if outcome is None:
                raise ConfigurationError(
                    f"CREDIT_CHECK_FALLBACK: {value!r} in {spec!r} is not a fallback outcome "
                    f"(one of {allowed})"
                )
            if not sep:
                default = outcome
                continue
            try:
                # A catalogue may name scenarios beyond the known ones (open codes).
                scenario = scenario_code(name)
            except ValueError:
                known = ", ".join(s.value for s in Scenario)
                raise ConfigurationError(
                    f"CREDIT_CHECK_FALLBACK: {name!r} in {spec!r} is not a scenario code "
                    f"(one of {known}, or a catalogue's own: {CODE_RULE})"
                ) from None
            if scenario in overrides:
                raise ConfigurationError(
                    f"CREDIT_CHECK_FALLBACK: scenario {name!r} is given twice in {spec!r}"
                )
            overrides[scenario] = outcome
        return cls(default or Outcome.REVIEW, overrides)

    def outcome(self, scenario: str) -> Outcome:
        """The fallback outcome for ``scenario``."""
        return self.overrides.get(scenario, self.default)
