"""The open codes of the catalogue (DESIGN §9.4b): scenarios, targets (roles), effects and
list kinds. A code outside the known set is data, not an error: fields take any
well-formed code, and a known one is given as its enum member (so ``is`` comparisons and
``.value`` keep working for the values every version knows).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Annotated, TypeVar

from pydantic import AfterValidator

_E = TypeVar("_E", bound=enum.StrEnum)

# Lower case so that "Procurement" and "procurement" can never be two scenarios.
CODE_RE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
CODE_RULE = ("lower-case ASCII letters, digits and _ . : -, starting with a letter, at "
             "most 64 characters")


class Effect(enum.StrEnum):
    """What a catalogue measure does (the effects this version can apply)."""

    DENY = "deny"
    REVIEW = "review"
    RESTRICT = "restrict"
    GREEN_CHANNEL = "green_channel"


class Scenario(enum.StrEnum):
    """The kind of case being handled (场景): the scenarios every version knows. A
    catalogue may name more (``Catalog.scenarios``); any well-formed code is accepted."""

    LICENSING = "licensing"
    QUALIFICATION = "qualification"
    PROCUREMENT = "procurement"
    BIDDING = "bidding"
    SUBSIDY = "subsidy"
    HONOR = "honor"
    MARKET_ACCESS = "market_access"
    PUBLIC_RESOURCE = "public_resource"


class ListKind(enum.StrEnum):
    RED = "red"
    BLACK = "black"
    WATCH = "watch"


class Target(enum.StrEnum):
    """Whose listing a measure looks at: the subject itself, or a person related to an
    organisation in a role (DESIGN §9.5). These are the targets this version applies."""

    SUBJECT = "subject"
    LEGAL_REPRESENTATIVE = "legal_representative"
    PRINCIPAL = "principal"
    REGISTERED_PRACTITIONER = "registered_practitioner"
    DIRECTOR = "director"
    SHAREHOLDER = "shareholder"


# The person roles of an organisation this version knows (every target but the subject).
ROLES = frozenset(t for t in Target if t is not Target.SUBJECT)
# How each role is named in reasons; an unknown role is named by its code.
ROLE_WORDS: dict[str, tuple[str, str]] = {
    "subject": ("主体", "the subject"),
    "legal_representative": ("法定代表人", "the legal representative"),
    "principal": ("主要负责人", "the principal"),
    "registered_practitioner": ("注册执业人员", "the registered practitioner"),
    "director": ("董事", "the director"),
    "shareholder": ("股东", "the shareholder"),
}


def role_words(role: str) -> tuple[str, str]:
    """A role's name in Chinese and English (an unknown role: its code, twice)."""
    return ROLE_WORDS.get(role, (role, role))


def check_code(value: str, what: str) -> str:
    """``value`` when it is a well-formed open code.

    Raises:
        ValueError: naming ``what`` and the rule.
    """
    if not CODE_RE.fullmatch(value):
        raise ValueError(f"{what} code {value[:70]!r} is malformed: use {CODE_RULE}")
    return value


def _known(members: type[_E], what: str) -> Callable[[str], str]:
    by_value = {m.value: m for m in members}

    def check(value: str) -> str:
        member = by_value.get(value)
        return member if member is not None else check_code(value, what)

    return check


ScenarioCode = Annotated[str, AfterValidator(_known(Scenario, "scenario"))]
TargetCode = Annotated[str, AfterValidator(_known(Target, "target"))]
EffectCode = Annotated[str, AfterValidator(_known(Effect, "effect"))]
LayerCode = Annotated[str, AfterValidator(lambda v: check_code(v, "layer"))]


def scenario_code(value: str) -> str:
    """A scenario given by a caller (a :class:`Scenario` or any well-formed code), as the
    models hold it.

    Raises:
        ValueError: the code is malformed.
    """
    try:
        return Scenario(value)
    except ValueError:
        return check_code(str(value), "scenario")


# -- regions (GB/T 2260) ----------------------------------------------------------------

_REGION_RE = re.compile(r"[1-9][0-9](?:[0-9]{2}){0,2}")


def region_prefix(value: str) -> str:
    """A layer's region as the prefix it covers: ``21`` (a province), ``2109`` (a city)
    or a six-digit county code; a six-digit code with trailing ``00`` pairs is read as the
    province or city it names (``210000`` → ``21``).

    Raises:
        ValueError: not a GB/T 2260 division code of 2, 4 or 6 digits.
    """
    if not _REGION_RE.fullmatch(value):
        raise ValueError(f"region {value[:20]!r} is not a GB/T 2260 division code (2, 4 or "
                         "6 digits, e.g. 21, 2109 or 210902)")
    while len(value) > 2 and value.endswith("00"):
        value = value[:-2]
    return value


def check_region(value: str) -> str:
    """A case's region: a six-digit GB/T 2260 code.

    Raises:
        ValueError: not six digits (or starting with 0).
    """
    if len(value) != 6 or not _REGION_RE.fullmatch(value):
        raise ValueError(f"region {value[:20]!r} is not a six-digit GB/T 2260 division code "
                         "(e.g. 210902)")
    return value


def covers(prefix: str | None, region: str | None) -> bool:
    """Whether a layer for ``prefix`` (None: national) applies to a case in ``region``."""
    return prefix is None or (region is not None and region.startswith(prefix))
