"""Identifier validation: USCC (GB 32100), org code (GB 11714), id number (GB 11643)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import re
import tempfile
import warnings
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_check import (
    CreditCheckWSGIMiddleware,
    FromJSON,
    InvalidSubjectId,
    PilotCodeWarning,
    Route,
    Subject,
    SubjectKind,
    mask_id,
    normalize_id,
    validate_id_number,
    validate_org_code,
    validate_uscc,
)
from credit_check._cli import main as cli_main
from credit_check._ids import (
    USCC_ALPHABET,
    detect_kind,
    id_number_check_char,
    is_valid_uscc,
    mask_ids_in,
    org_code_check_char,
    uscc_check_char,
)

VALID_USCC = [
    "91110000600037341L",
    "121200004013590816",
    "91310110666007217T",
    "91430111MA4L41YT1U",
    "91620105L015101280",
]
VALID_ID_NUMBERS = [
    "11010519491231002X",
    "440524188001010014",
    "44011320141005001X",
    "81000019980902013X",  # Hong Kong residents' residence permit
    "932682198501010017",  # 2023 foreigner permanent-residence card
]
PILOT_CODE = "91350203M0001QAY9B"

# Characters a single-character typo may introduce (before normalisation).
TYPO_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*#./"


# --- valid vectors ---------------------------------------------------------------


@pytest.mark.parametrize("code", VALID_USCC)
def test_known_valid_uscc_is_accepted_unchanged(code: str) -> None:
    assert validate_uscc(code) == code


@pytest.mark.parametrize("number", VALID_ID_NUMBERS)
def test_known_valid_id_number_is_accepted_unchanged(number: str) -> None:
    assert validate_id_number(number) == number


@pytest.mark.parametrize(
    ("text", "expected"), [("00251805-7", "002518057"), ("00251809-X", "00251809X")]
)
def test_known_valid_org_code_is_accepted_without_its_hyphen(text: str, expected: str) -> None:
    assert validate_org_code(text) == expected


def test_legacy_15_digit_id_number_is_upgraded_to_18_characters() -> None:
    assert validate_id_number("150102880730303") == "150102198807303035"


def test_legacy_15_digit_id_number_with_a_letter_reports_the_character() -> None:
    with pytest.raises(InvalidSubjectId, match=r"illegal character 'A' at position 9") as info:
        validate_id_number("15010288A730303")
    assert info.value.problem == "character"
    assert "15010288A730303" not in str(info.value)


# --- invalid vectors and their messages ------------------------------------------


def test_uscc_with_wrong_check_character_names_the_expected_one() -> None:
    with pytest.raises(InvalidSubjectId, match=r"check character should be 'L', got 'N'") as info:
        validate_uscc("91110000600037341N")
    assert info.value.field == "uscc"
    assert info.value.problem == "check_character"


def test_uscc_with_letters_outside_the_alphabet_names_the_first_and_its_position() -> None:
    with pytest.raises(InvalidSubjectId, match=r"illegal character 'I' at position 14") as info:
        validate_uscc("9111000060003IOZSV")
    assert info.value.problem == "character"


@pytest.mark.parametrize("code", ["91110000600037341", "91110000600037341LL", "9111"])
def test_uscc_of_wrong_length_reports_the_length_it_got(code: str) -> None:
    with pytest.raises(InvalidSubjectId, match=rf"must be 18 characters, got {len(code)}") as info:
        validate_uscc(code)
    assert info.value.problem == "length"
    assert code not in str(info.value) and f"uscc {mask_id(code)}:" in str(info.value)


@pytest.mark.parametrize(("code", "shown"), [
    ("110105194912310021X", "110105********021X"),  # an id number one character too long
    ("9111000060003IOZSV", "911100********OZSV"),   # an illegal character
    ("91110000600037341N", "911100********341N"),   # a wrong check character
    ("MA5AP9ET", "********"),                       # short inputs are masked whole
])
def test_uscc_error_masks_the_input_first_6_and_last_4(code: str, shown: str) -> None:
    with pytest.raises(InvalidSubjectId) as info:
        validate_uscc(code)
    assert code not in str(info.value) and f"uscc {shown}:" in str(info.value)


def test_org_code_error_masks_the_code_whole() -> None:
    for code in ("MA5AP9ET-5", "00251805", "00*51805-7"):
        with pytest.raises(InvalidSubjectId) as info:
            validate_org_code(code)
        assert str(info.value).startswith("org_code ********:")
        assert normalize_id(code) not in str(info.value)


def test_pilot_code_warning_masks_the_code() -> None:
    with pytest.warns(PilotCodeWarning) as caught:
        validate_uscc(PILOT_CODE, allow=[PILOT_CODE])
    assert PILOT_CODE not in str(caught[0].message) and mask_id(PILOT_CODE) in str(
        caught[0].message)


def test_empty_uscc_is_rejected_as_empty() -> None:
    with pytest.raises(InvalidSubjectId, match="empty") as info:
        validate_uscc(" - ")
    assert info.value.problem == "empty"


def test_uscc_whose_embedded_org_code_check_character_is_wrong_is_rejected() -> None:
    body = "91110000" + "60003734" + "2"  # org code 600037342, whose check char is 1
    assert org_code_check_char("60003734") != "2"
    code = body + uscc_check_char(body)
    with pytest.raises(InvalidSubjectId, match=r"organisation code at positions 9-17 has "
                       r"check character '2', should be '1'") as info:
        validate_uscc(code)
    assert info.value.problem == "check_character"
    assert "600037342" not in str(info.value)


def test_org_code_with_wrong_check_character_is_rejected() -> None:
    with pytest.raises(InvalidSubjectId, match=r"check character should be '2', got '5'") as info:
        validate_org_code("MA5AP9ET-5")
    assert info.value.field == "org_code"
    assert info.value.problem == "check_character"


def test_org_code_of_wrong_length_reports_the_length_it_got() -> None:
    with pytest.raises(InvalidSubjectId, match=r"got 8") as info:
        validate_org_code("00251805")
    assert info.value.problem == "length"


def test_org_code_with_illegal_character_names_it_and_its_position() -> None:
    with pytest.raises(InvalidSubjectId, match=r"illegal character '\*' at position 3"):
        validate_org_code("00*51805-7")


def test_id_number_with_wrong_check_character_names_the_expected_one() -> None:
    with pytest.raises(InvalidSubjectId, match=r"check character should be '3', got 'X'") as info:
        validate_id_number("36042619910102009X")
    assert info.value.field == "id_number"
    assert info.value.problem == "check_character"


def test_id_number_with_month_13_is_an_impossible_birth_date() -> None:
    with pytest.raises(InvalidSubjectId, match=r"impossible birth date") as info:
        validate_id_number("360426199113010079")
    assert info.value.problem == "birth_date"


def test_id_number_with_x_before_the_last_position_names_the_character_and_position() -> None:
    with pytest.raises(InvalidSubjectId, match=r"illegal character 'X' at position 5") as info:
        validate_id_number("1101X519491231002X")
    assert info.value.problem == "character"


@pytest.mark.parametrize("number", ["1101051949123100", "11010519491231002X1", "1234"])
def test_id_number_of_wrong_length_reports_the_length_it_got(number: str) -> None:
    with pytest.raises(InvalidSubjectId, match=rf"got {len(number)}\b") as info:
        validate_id_number(number)
    assert info.value.problem == "length"


def test_id_number_starting_with_0_has_no_region() -> None:
    body = "01010519491231002"
    with pytest.raises(InvalidSubjectId, match="region") as info:
        validate_id_number(body + id_number_check_char(body))
    assert info.value.problem == "region"


@pytest.mark.parametrize(
    "number",
    [
        "36042619910102009X",  # check character
        "360426199113010079",  # month 13
        "1101X519491231002X",  # illegal character
        "11010519491231002",  # length
        "360426199102300079",  # 30 February
        "010105194912310021",  # region
        "15010288A730303",  # legacy, character
        "150102881330303",  # legacy, month 13
    ],
)
def test_id_number_error_message_masks_the_number(number: str) -> None:
    with pytest.raises(InvalidSubjectId) as info:
        validate_id_number(number)
    message = str(info.value)
    assert number not in message
    assert number[6:-4] not in message
    assert mask_id(number) in message
    assert number[:6] + "********" + number[-4:] in message


def test_invalid_legal_representative_id_is_masked_in_the_error() -> None:
    with pytest.raises(InvalidSubjectId) as info:
        Subject.organization("91110000600037341L", legal_representative="36042619910102009X")
    assert "36042619910102009X" not in str(info.value)
    assert "360426********009X" in str(info.value)


# --- normalisation and masking ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9111 0000 6000 3734 1L", "91110000600037341L"),
        ("91110000-600037341-l", "91110000600037341L"),
        ("９１１１００００６０００３７３４１Ｌ", "91110000600037341L"),  # full-width
        ("911100006000３７３４１ｌ", "91110000600037341L"),
        ("\u300091110000600037341L\u3000", "91110000600037341L"),  # ideographic spaces
        ("91110000\uff0d600037341L", "91110000600037341L"),  # full-width hyphen
        ("11010519491231002x", "11010519491231002X"),
    ],
)
def test_normalize_id_strips_separators_folds_full_width_and_upper_cases(
    text: str, expected: str
) -> None:
    assert normalize_id(text) == expected


def test_uscc_is_validated_after_normalisation() -> None:
    assert validate_uscc("９１１１００００-６０００３７３４１ｌ") == "91110000600037341L"


def test_id_number_with_lowercase_x_and_spaces_is_accepted_upper_cased() -> None:
    assert validate_id_number(" 110105 19491231 002x ") == "11010519491231002X"


def test_mask_id_keeps_first_6_and_last_4() -> None:
    assert mask_id("11010519491231002X") == "110105********002X"


def test_mask_id_masks_short_strings_whole() -> None:
    assert mask_id("1234567890") == "********"


def test_mask_ids_in_masks_what_may_be_an_id_and_keeps_words_uscc_and_our_hex_ids() -> None:
    person, uscc, hex_id = "11010519491231002X", "91430111MA4L41YT1U", "ab12" * 8
    text = (f"lookup exploded for {person} and {person}1 ({normalize_id(person)[:-1]}), "
            f"firm {uscc}, decision {hex_id}, RecursionError in _collect_everything_here, "
            f"wide {'１１０１０５１９４９１２３１００２Ｘ'}")
    masked = mask_ids_in(text)
    assert person not in masked and person[:-1] not in masked
    assert "１９４９１２３１" not in masked
    assert masked.count("110105********002X") == 1
    assert "110105********02X1" in masked and "110105********1002" in masked
    assert uscc in masked and hex_id in masked
    assert "RecursionError in _collect_everything_here" in masked


# --- Subject constructors --------------------------------------------------------


def test_subject_organization_validates_and_normalises_the_uscc() -> None:
    subject = Subject.organization("9111 0000 6000 3734 1l", name="某公司")
    assert subject.kind is SubjectKind.ORGANIZATION
    assert subject.id == "91110000600037341L"
    assert subject.name == "某公司"


def test_subject_organization_rejects_an_invalid_uscc() -> None:
    with pytest.raises(InvalidSubjectId, match="check character"):
        Subject.organization("91110000600037341N")


def test_subject_organization_takes_the_legal_representative_as_an_id_number() -> None:
    subject = Subject.organization("91110000600037341L", legal_representative="11010519491231002x")
    assert subject.legal_representative == Subject.person("11010519491231002X")


def test_subject_person_upgrades_a_legacy_number() -> None:
    subject = Subject.person("150102880730303", name="张三")
    assert subject.kind is SubjectKind.PERSON
    assert subject.id == "150102198807303035"


def test_subject_person_repr_masks_the_id_number() -> None:
    subject = Subject.person("11010519491231002X")
    assert "11010519491231002X" not in repr(subject)
    assert "110105********002X" in repr(subject)
    assert subject.public_dict()["id"] == "110105********002X"


def test_subject_person_rejects_an_invalid_number_with_a_masked_message() -> None:
    with pytest.raises(InvalidSubjectId) as info:
        Subject.person("36042619910102009X")
    assert "36042619910102009X" not in str(info.value)


def test_invalid_subject_id_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_uscc("x")


# --- pilot-period allow-list -----------------------------------------------------


def test_pilot_code_is_rejected_when_not_on_the_allow_list() -> None:
    with pytest.raises(InvalidSubjectId, match="check character"):
        validate_uscc(PILOT_CODE)


def test_pilot_code_on_the_allow_list_is_accepted_with_a_warning() -> None:
    with pytest.warns(PilotCodeWarning, match="allow-list"):
        assert validate_uscc(PILOT_CODE, allow=[PILOT_CODE]) == PILOT_CODE


def test_allow_list_entries_are_normalised_before_comparison() -> None:
    with pytest.warns(PilotCodeWarning):
        assert validate_uscc("91350203 M0001QAY9B", allow=["91350203-m0001qay9b"]) == PILOT_CODE


def test_subject_organization_accepts_an_allow_listed_pilot_code_with_a_warning() -> None:
    with pytest.warns(PilotCodeWarning):
        subject = Subject.organization(PILOT_CODE, allow=(PILOT_CODE,))
    assert subject.id == PILOT_CODE


def test_allow_list_does_not_excuse_illegal_characters_or_length() -> None:
    with pytest.raises(InvalidSubjectId, match="illegal character"):
        validate_uscc("9111000060003IOZSV", allow=["9111000060003IOZSV"])
    with pytest.raises(InvalidSubjectId, match="got 17"):
        validate_uscc(PILOT_CODE[:17], allow=[PILOT_CODE[:17]])


def test_valid_code_needs_no_allow_list_and_raises_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert validate_uscc(VALID_USCC[0], allow=[PILOT_CODE]) == VALID_USCC[0]


# --- properties ------------------------------------------------------------------


@st.composite
def valid_usccs(draw: st.DrawFn) -> str:
    head = draw(st.text(USCC_ALPHABET, min_size=8, max_size=8))
    org_body = draw(st.text(USCC_ALPHABET, min_size=8, max_size=8))
    body = head + org_body + org_code_check_char(org_body)
    return body + uscc_check_char(body)


@st.composite
def valid_id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.integers(100000, 999999))
    birth = draw(st.dates(dt.date(1850, 1, 1), dt.date(2099, 12, 31)))
    sequence = draw(st.integers(0, 999))
    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + id_number_check_char(body)


@st.composite
def single_char_changes(draw: st.DrawFn, codes: st.SearchStrategy[str]) -> tuple[str, str]:
    """A valid code and a copy with one character substituted or deleted."""
    code = draw(codes)
    pos = draw(st.integers(0, len(code) - 1))
    if draw(st.booleans()):
        changed = code[:pos] + code[pos + 1 :]
    else:
        char = draw(st.sampled_from(TYPO_CHARS).filter(lambda c: c != code[pos]))
        changed = code[:pos] + char + code[pos + 1 :]
    return code, changed


@given(valid_usccs())
def test_every_generated_valid_uscc_passes(code: str) -> None:
    assert validate_uscc(code) == code


@given(valid_id_numbers())
def test_every_generated_valid_id_number_passes(number: str) -> None:
    assert validate_id_number(number) == number


@given(single_char_changes(valid_usccs()))
def test_every_single_character_change_of_a_uscc_fails(pair: tuple[str, str]) -> None:
    _, changed = pair
    with pytest.raises(InvalidSubjectId):
        validate_uscc(changed)


@given(single_char_changes(valid_id_numbers()))
def test_every_single_character_change_of_an_id_number_fails(pair: tuple[str, str]) -> None:
    original, changed = pair
    with pytest.raises(InvalidSubjectId) as info:
        validate_id_number(changed)
    assert original not in str(info.value)
    assert changed not in str(info.value)


@given(valid_usccs())
def test_every_generated_valid_uscc_survives_spacing_and_case(code: str) -> None:
    spaced = " ".join(code[i : i + 4] for i in range(0, 18, 4)).lower()
    assert validate_uscc(spaced) == code


def _accepted_by_the_named_checks(code: str) -> bool:
    return (all(c in USCC_ALPHABET for c in code)
            and code[17] == uscc_check_char(code[:17])
            and code[16] == org_code_check_char(code[8:16]))


@given(st.one_of(valid_usccs(),
                 single_char_changes(valid_usccs()).map(lambda pair: pair[1]),
                 st.text(USCC_ALPHABET + "IOSVZ*a-é", min_size=18, max_size=18)).filter(
    lambda code: len(code) == 18))
def test_the_one_pass_uscc_check_accepts_exactly_what_the_named_checks_accept(
        code: str) -> None:
    """validate_uscc's shortcut for a valid code never accepts one the full checks reject."""
    assert is_valid_uscc(code) == _accepted_by_the_named_checks(code)


def test_the_one_pass_uscc_check_knows_every_org_check_character() -> None:
    seen = set()
    for n in range(1000):
        org = f"{n:08d}"
        check = org_code_check_char(org)
        code17 = "91350100" + org + check
        seen.add(check)
        code = code17 + uscc_check_char(code17)
        assert is_valid_uscc(code) and validate_uscc(code) == code
    assert seen == set("0123456789X")


@given(st.one_of(valid_usccs(), valid_id_numbers(),
                 single_char_changes(valid_usccs()).map(lambda pair: pair[1]),
                 st.sampled_from([*VALID_USCC, *VALID_ID_NUMBERS, PILOT_CODE,
                                  "110105491231002", "9135-0100M000100Y43 ", ""])))
def test_parse_tells_the_kind_as_detect_kind_does(code: str) -> None:
    """Subject.parse's shortcut for a plain USCC gives what the kind-by-shape route gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PilotCodeWarning)
        try:
            kind = detect_kind(code)
            expected = (Subject.person(code) if kind == "person"
                        else Subject.organization(code, allow=[PILOT_CODE]))
        except InvalidSubjectId as exc:
            with pytest.raises(InvalidSubjectId, match=re.escape(str(exc))):
                Subject.parse(code, allow=[PILOT_CODE])
            return
        got = Subject.parse(code, allow=[PILOT_CODE])
    assert got == expected and got.model_fields_set == expected.model_fields_set
    assert list(got.__dict__.items()) == list(expected.__dict__.items())


# --- masked echoes (DESIGN rule 10) ----------------------------------------------


@st.composite
def near_miss_id_numbers(draw: st.DrawFn) -> str:
    """A valid id number with one character added, removed or changed."""
    number = draw(valid_id_numbers())
    pos = draw(st.integers(0, len(number) - 1))
    how = draw(st.sampled_from(["add", "remove", "change"]))
    if how == "remove":
        return number[:pos] + number[pos + 1 :]
    char = draw(st.sampled_from(TYPO_CHARS).filter(lambda c: how == "add" or c != number[pos]))
    return number[:pos] + char + number[pos + (how == "change") :]


class _NoChecker:
    """An invalid identifier is answered before any checker method is called."""

    def check(self, *args: object) -> None:
        raise AssertionError("an invalid identifier reached the checker")

    check_local = check_many = check


_MIDDLEWARE = CreditCheckWSGIMiddleware(
    lambda environ, start_response: [], checker=_NoChecker(),
    routes=[Route("POST", "/bids", "bidding", subject=FromJSON("bidder.id"))])


def _echoes(raw: str) -> list[str]:
    """Every text that answers ``raw`` as an identifier: the exception, the middleware's
    400, the CLI's stderr and stdout for ``check`` and ``check-file``, and the report."""
    texts = []
    with pytest.raises(InvalidSubjectId) as info:
        Subject.parse(raw)
    texts.append(str(info.value))
    body = json.dumps({"bidder": {"id": raw}}).encode()
    with httpx.Client(transport=httpx.WSGITransport(app=_MIDDLEWARE),
                      base_url="http://testserver") as client:
        answer = client.post("/bids", content=body,
                             headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["problem"] == info.value.problem
    texts.append(answer.text)
    with tempfile.TemporaryDirectory() as tmp:
        rows, report = Path(tmp) / "bidders.csv", Path(tmp) / "report.csv"
        rows.write_text(f"id,name\n{raw},某某\n", encoding="utf-8")
        for argv in (["check", raw, "--scenario", "bidding"],
                     ["check-file", str(rows), "--scenario", "bidding", "--out", str(report)]):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                assert cli_main(argv) == 2
            texts += [out.getvalue(), err.getvalue()]
        with report.open(encoding="utf-8-sig") as fh:
            (line,) = list(csv.DictReader(fh))
        assert line["outcome"] == "invalid" and line["error"] == str(info.value)
        texts.append(report.read_text(encoding="utf-8-sig"))
    return texts


@settings(deadline=None)  # the first example imports the CLI and the middleware
@given(near_miss_id_numbers())
def test_a_near_miss_id_number_is_never_echoed_in_clear(raw: str) -> None:
    """Exception text, the middleware's 400, CLI stderr and the check-file report show a
    mistyped id number masked (first 6 + ******** + last 4), never as it was entered."""
    try:
        subject = Subject.parse(raw)
    except InvalidSubjectId:
        pass
    else:  # a letter typed into an id number made a valid USCC: shown in clear by design
        assert subject.kind is SubjectKind.ORGANIZATION and is_valid_uscc(subject.id)
        return
    for text in _echoes(raw):
        assert raw not in text and normalize_id(raw) not in text
    assert mask_id(normalize_id(raw)) in _echoes(raw)[0]
