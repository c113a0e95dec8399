"""Subject identifiers: normalisation, check characters and masking.

统一社会信用代码 (USCC, GB 32100-2015), the 组织机构代码 inside it (GB 11714) and
居民身份证号码 (GB 11643-1999, with residence permits and the 2023 foreigner
permanent-residence card). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import unicodedata
import warnings
from collections.abc import Iterable

from credit_check._exceptions import InvalidSubjectId

__all__ = [
    "PilotCodeWarning",
    "detect_kind",
    "id_number_check_char",
    "mask_id",
    "mask_ids_in",
    "normalize_id",
    "org_code_check_char",
    "upgrade_id_number",
    "uscc_check_char",
    "validate_id_number",
    "validate_org_code",
    "validate_uscc",
]

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_VALUE = {c: i for i, c in enumerate(_ORG_ALPHABET)}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# Spaces and every dash a form or a scanner may put into a code.
_SEPARATORS = re.compile(r"[\s\u00a0\u3000\-\u2010-\u2015\u2212\ufe63\uff0d_]+")
MASK = "********"
_ALPHABET_SETS: dict[str, frozenset[str]] = {}
# Per position of a USCC's first 17, each character's weighted value: one lookup per
# position sums both checks, and a KeyError marks a character outside the alphabet. The
# embedded organisation code's terms (positions 9-16; only USCC characters reach them, the
# USCC alphabet being a subset of GB 11714's) are kept above bit 14, which the USCC sum
# (at most 17 * 30 * 30) never reaches.
_ORG_SHIFT = 14
_USCC_TERMS = tuple(
    {c: v * w + (_ORG_VALUE[c] * _ORG_WEIGHTS[i - 8] << _ORG_SHIFT if 8 <= i < 16 else 0)
     for c, v in _USCC_VALUE.items()}
    for i, w in enumerate(_USCC_WEIGHTS))
_USCC_SUM = (1 << _ORG_SHIFT) - 1
_ORG_CHECK = "0X987654321"  # by the weighted sum modulo 11
_term = dict.__getitem__


class PilotCodeWarning(UserWarning):
    """A code failed its checksum but was accepted from the pilot-period allow-list."""


def normalize_id(text: str) -> str:
    """Strip spaces and hyphens, fold full-width characters to ASCII, upper-case."""
    if text.isascii() and text.isalnum():
        return text.upper()  # the usual case: NFKC leaves ASCII as it is, nothing to strip
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()


def mask_id(text: str) -> str:
    """Mask an identifier for display: first 6 + ``********`` + last 4.

    Strings too short to keep 10 characters in clear are masked whole.
    """
    if len(text) <= 10:
        return MASK
    return text[:6] + MASK + text[-4:]


# A run of letters and digits long enough to be an identifier, in any script (full-width
# digits included): what mask_ids_in looks at.
_TOKEN = re.compile(r"[^\W_]{11,}")


def mask_ids_in(text: str) -> str:
    """``text`` with every token that may be an identifier masked, for logs of failures
    whose inputs are not known (an exception raised inside our code).

    A token is a run of 11 or more letters and digits with 6 or more digits; it is kept
    in clear only when it is a valid USCC that cannot be read as an id number, or a
    32-character hex id of ours (decision and record ids). Words are left alone.
    """

    def mask(match: re.Match[str]) -> str:
        token = match.group()
        if sum(c.isdigit() for c in token) < 6 or _HEX32.fullmatch(token):
            return token
        code = normalize_id(token)
        if len(code) == 18 and not code[:17].isdigit() and is_valid_uscc(code):
            return token
        return mask_id(token)

    return _TOKEN.sub(mask, text)


_HEX32 = re.compile(r"[0-9a-f]{32}")


def uscc_check_char(body: str) -> str:
    """The GB 32100 check character for the first 17 characters of a USCC."""
    if len(body) != 17:
        raise ValueError(f"a USCC body has 17 characters, got {len(body)}")
    total = sum(map(operator.mul, map(_USCC_VALUE.__getitem__, body), _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(body: str) -> str:
    """The GB 11714 check character for the first 8 characters of an organisation code."""
    if len(body) != 8:
        raise ValueError(f"an organisation code body has 8 characters, got {len(body)}")
    total = sum(map(operator.mul, map(_ORG_VALUE.__getitem__, body), _ORG_WEIGHTS))
    value = 11 - total % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


def id_number_check_char(body: str) -> str:
    """The GB 11643 check character for the first 17 digits of an id number."""
    if len(body) != 17:
        raise ValueError(f"an id number body has 17 digits, got {len(body)}")
    return _ID_CHECK[sum(map(operator.mul, map(int, body), _ID_WEIGHTS)) % 11]


def _illegal(kind: str, code: str, alphabet: str, shown: str) -> None:
    if _ALPHABET_SETS.setdefault(alphabet, frozenset(alphabet)).issuperset(code):
        return
    for pos, char in enumerate(code, start=1):
        if char not in alphabet:
            raise InvalidSubjectId(
                f"{kind} {shown}: illegal character {char!r} at position {pos}",
                field=kind,
                problem="character",
            )


def is_valid_uscc(code: str) -> bool:
    """Whether an 18-character normalised code is a valid USCC, in one pass; False leaves
    telling what is wrong to the checks that name it."""
    try:
        total = sum(map(_term, _USCC_TERMS, code))  # the first 17 characters
    except KeyError:
        return False
    return (code[17] == USCC_ALPHABET[-(total & _USCC_SUM) % 31]
            and code[16] == _ORG_CHECK[(total >> _ORG_SHIFT) % 11])


def validate_org_code(text: str) -> str:
    """Validate a 9-character 组织机构代码 (GB 11714) and return it normalised.

    Raises:
        InvalidSubjectId: wrong length, illegal character or wrong check character. The
            code is masked in the message (:func:`mask_id`).
    """
    code = normalize_id(text)
    shown = mask_id(code)
    if len(code) != 9:
        raise InvalidSubjectId(
            f"org_code {shown}: must be 9 characters (8 + check character), got {len(code)}",
            field="org_code",
            problem="length",
        )
    _illegal("org_code", code[:8], _ORG_ALPHABET, shown)
    expected = org_code_check_char(code[:8])
    if code[8] != expected:
        raise InvalidSubjectId(
            f"org_code {shown}: check character should be {expected!r}, got {code[8]!r}",
            field="org_code",
            problem="check_character",
        )
    return code


def validate_uscc(text: str, *, allow: Iterable[str] = ()) -> str:
    """Validate a 统一社会信用代码 and return it normalised.

    Args:
        text: the code as entered (spaces, hyphens and full-width characters are tolerated).
        allow: known pilot-period codes that fail a checksum but are genuine; they are
            accepted with a :class:`PilotCodeWarning`.

    Raises:
        InvalidSubjectId: wrong length, illegal character, or a wrong check character
            (of the code or of the organisation code at positions 9-17). The code is masked
            in the message (:func:`mask_id`): what fails is not a valid USCC, and may be a
            mistyped id number.
    """
    code = normalize_id(text)
    if len(code) == 18 and is_valid_uscc(code):
        return code  # the usual case
    if not code:
        raise InvalidSubjectId("uscc: empty; enter the 18-character code", field="uscc",
                               problem="empty")
    shown = mask_id(code)
    if len(code) != 18:
        raise InvalidSubjectId(
            f"uscc {shown}: must be 18 characters, got {len(code)}",
            field="uscc",
            problem="length",
        )
    _illegal("uscc", code, USCC_ALPHABET, shown)
    try:
        expected = uscc_check_char(code[:17])
        if code[17] != expected:
            raise InvalidSubjectId(
                f"uscc {shown}: check character should be {expected!r}, got {code[17]!r}",
                field="uscc",
                problem="check_character",
            )
        org_expected = org_code_check_char(code[8:16])
        if code[16] != org_expected:
            raise InvalidSubjectId(
                f"uscc {shown}: the organisation code at positions 9-17 has check "
                f"character {code[16]!r}, should be {org_expected!r}",
                field="uscc",
                problem="check_character",
            )
    except InvalidSubjectId:
        if code in {normalize_id(a) for a in allow}:
            warnings.warn(
                f"uscc {shown} fails its checksum but is on the pilot-code allow-list",
                PilotCodeWarning,
                stacklevel=2,
            )
            return code
        raise
    return code


def _birth_date(code: str, shown: str) -> None:
    year, month, day = int(code[6:10]), int(code[10:12]), int(code[12:14])
    try:
        dt.date(year, month, day)
    except ValueError:
        raise InvalidSubjectId(
            f"id_number {shown}: impossible birth date "
            f"(year {year}, month {month:02d}, day {day:02d})",
            field="id_number",
            problem="birth_date",
        ) from None
    if year < 1850:
        raise InvalidSubjectId(
            f"id_number {shown}: impossible birth year {year}",
            field="id_number",
            problem="birth_date",
        )


def upgrade_id_number(text: str) -> str:
    """Convert a 15-digit legacy id number to its 18-character form (born 19xx)."""
    code = normalize_id(text)
    if len(code) != 15:
        raise InvalidSubjectId(
            f"id_number {mask_id(code)}: a legacy number has 15 digits, got {len(code)} characters",
            field="id_number",
            problem="length",
        )
    for pos, char in enumerate(code, start=1):
        if not (char.isascii() and char.isdigit()):
            raise InvalidSubjectId(
                f"id_number {mask_id(code)}: illegal character {char!r} at position {pos} "
                f"(a legacy number has only digits)",
                field="id_number",
                problem="character",
            )
    body = code[:6] + "19" + code[6:]
    _birth_date(body + "00", mask_id(code))
    return body + id_number_check_char(body)


def validate_id_number(text: str) -> str:
    """Validate a 居民身份证号码 (or permit number of the same layout), return it normalised.

    Accepts 18-character numbers (lowercase ``x`` tolerated), residence permits of Hong Kong,
    Macao and Taiwan residents (81/82/83 prefixes), the 2023 foreigner permanent-residence
    card (prefix 9), and 15-digit legacy numbers, which are converted to 18.

    Raises:
        InvalidSubjectId: wrong length, illegal character, impossible birth date or wrong
            check character. The number is masked in the message.
    """
    code = normalize_id(text)
    shown = mask_id(code)
    if not code:
        raise InvalidSubjectId("id_number: empty; enter the 18-character id number",
                               field="id_number", problem="empty")
    if len(code) == 15:
        return upgrade_id_number(code)
    if len(code) != 18:
        raise InvalidSubjectId(
            f"id_number {shown}: must be 18 characters (or 15 for a legacy number), "
            f"got {len(code)}",
            field="id_number",
            problem="length",
        )
    for pos, char in enumerate(code, start=1):
        if not char.isascii() or not (char.isdigit() or (pos == 18 and char == "X")):
            raise InvalidSubjectId(
                f"id_number {shown}: illegal character {char!r} at position {pos} "
                f"(only digits, and X as the last character)",
                field="id_number",
                problem="character",
            )
    if code[0] == "0":
        raise InvalidSubjectId(
            f"id_number {shown}: no region code starts with 0",
            field="id_number",
            problem="region",
        )
    _birth_date(code, shown)
    expected = id_number_check_char(code[:17])
    if code[17] != expected:
        raise InvalidSubjectId(
            f"id_number {shown}: check character should be {expected!r}, got {code[17]!r}",
            field="id_number",
            problem="check_character",
        )
    return code


def detect_kind(text: str) -> str:
    """Guess whether a code is an ``organization`` USCC or a ``person`` id number.

    Anything shaped like an id number (15 digits, or 17 digits and a digit or X) that is not
    a valid USCC is treated as a person, so that a mistyped personal number is reported,
    and masked, as one.
    """
    code = normalize_id(text)
    if len(code) == 15 and code.isdigit():
        return "person"
    if len(code) == 18 and code[:17].isdigit() and code[17] in "0123456789X":
        try:
            validate_id_number(code)
        except InvalidSubjectId:
            try:
                validate_uscc(code)
            except InvalidSubjectId:
                return "person"
            return "organization"
        return "person"
    return "organization"
