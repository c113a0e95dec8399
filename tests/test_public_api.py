"""The public API: ``credit_check.__all__`` and the error tree."""

from __future__ import annotations
import __future__

import importlib
import inspect
import types

import pytest

import credit_check

PUBLIC = list(credit_check.__all__)
EXCEPTIONS = [
    name
    for name in PUBLIC
    if isinstance(getattr(credit_check, name), type)
    and issubclass(getattr(credit_check, name), BaseException)
    and not issubclass(getattr(credit_check, name), Warning)
]


def public_namespace() -> set[str]:
    """Public names bound in the package that are neither modules nor ``__future__`` flags."""
    return {
        name
        for name, value in vars(credit_check).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)
    }


def test_all_is_sorted() -> None:
    assert sorted(PUBLIC) == PUBLIC


def test_all_has_no_duplicates() -> None:
    assert len(set(PUBLIC)) == len(PUBLIC)


def test_all_equals_the_public_names_of_the_package_namespace() -> None:
    assert set(PUBLIC) == public_namespace()


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable_from_the_package(name: str) -> None:
    module = importlib.import_module("credit_check")
    assert getattr(module, name) is getattr(credit_check, name)
    namespace: dict[str, object] = {}
    exec(f"from credit_check import {name}", namespace)
    assert namespace[name] is getattr(credit_check, name)


def test_design_names_are_public() -> None:
    for name in (
        "Checker",
        "Subject",
        "Transaction",
        "Outcome",
        "InvalidSubjectId",
        "CreditCheckError",
    ):
        assert name in PUBLIC


def test_there_are_public_exceptions() -> None:
    assert "CreditCheckError" in EXCEPTIONS
    assert len(EXCEPTIONS) > 1


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_every_public_exception_derives_from_credit_check_error(name: str) -> None:
    cls = getattr(credit_check, name)
    assert issubclass(cls, credit_check.CreditCheckError)


def test_public_warnings_are_warnings_not_errors() -> None:
    assert issubclass(credit_check.PilotCodeWarning, UserWarning)
    assert not issubclass(credit_check.PilotCodeWarning, credit_check.CreditCheckError)


def test_invalid_subject_id_is_a_value_error() -> None:
    assert issubclass(credit_check.InvalidSubjectId, ValueError)
    with pytest.raises(ValueError):
        credit_check.Subject.organization("not a code")


def test_public_classes_and_functions_have_docstrings() -> None:
    missing = [
        name
        for name in PUBLIC
        if (
            inspect.isclass(getattr(credit_check, name))
            or inspect.isfunction(getattr(credit_check, name))
        )
        and not inspect.getdoc(getattr(credit_check, name))
    ]
    assert missing == []
