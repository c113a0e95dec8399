"""Who is checked (主体): the :class:`Subject` model, which validates and normalises its
identifier by its kind however it is made (DESIGN §4, rule 10).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from credit_check._exceptions import InvalidSubjectId
from credit_check._ids import detect_kind, mask_id, validate_id_number, validate_uscc


class SubjectKind(enum.StrEnum):
    ORGANIZATION = "organization"
    PERSON = "person"


class Subject(BaseModel):
    """Who is checked (主体): an organisation by USCC or a natural person by id number.

    Build one with :meth:`organization`, :meth:`person` or :meth:`parse`. Every way of
    making one validates and normalises the identifier by its kind, as those do, and
    raises :class:`~credit_check.InvalidSubjectId` for an invalid one:
    ``Subject(kind=..., id=...)``, ``Subject.model_validate(...)``,
    ``model_validate_json(...)`` and ``model_copy(update=...)`` alike (pydantic's
    ``model_construct`` skips validation by definition: it is for values already
    validated). A pilot-period code that fails its checksum is accepted only when the
    factories are given it in ``allow=`` (for ``model_validate``, the validation context
    ``{"allow": [...]}``). ``repr()`` masks a person's id number.
    """

    model_config = ConfigDict(frozen=True)

    kind: SubjectKind
    id: str
    name: str | None = None
    legal_representative: Subject | None = None

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _id_error(exc) from None

    # Pydantic's own mark of an __init__ that only validates (RootModel's has it too):
    # without it pydantic calls this __init__ from every validation, validating twice
    # and losing the validation context (a test guards this).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str, info: ValidationInfo) -> str:
        context = info.context
        if context is _VALIDATED:
            return value  # a factory's: validated and normalised already
        kind = info.data.get("kind")
        if kind is SubjectKind.ORGANIZATION:
            allow = context.get("allow", ()) if isinstance(context, dict) else ()
            return validate_uscc(value, allow=allow)
        if kind is SubjectKind.PERSON:
            return validate_id_number(value)
        return value  # no valid kind: pydantic reports the kind

    @field_validator("legal_representative")
    @classmethod
    def _a_person(cls, value: Subject | None) -> Subject | None:
        if value is not None and value.kind is not SubjectKind.PERSON:
            raise ValueError(_NOT_A_PERSON)
        return value

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        """Validate ``obj`` as pydantic does; an invalid identifier raises
        :class:`~credit_check.InvalidSubjectId`."""
        try:
            return super().model_validate(obj, **options)
        except ValidationError as exc:
            raise _id_error(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        """As :meth:`model_validate`, from JSON text."""
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            raise _id_error(exc) from None

    @classmethod
    def model_validate_strings(cls, obj: Any, **options: Any) -> Self:
        """As :meth:`model_validate`, from strings."""
        try:
            return super().model_validate_strings(obj, **options)
        except ValidationError as exc:
            raise _id_error(exc) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; an ``update`` of the kind or id is validated (and the id normalised) as
        a new Subject's would be, and a legal representative must be a person."""
        if update and ("id" in update or "kind" in update):
            kind = SubjectKind(update.get("kind", self.kind))
            code = update.get("id", self.id)
            if not isinstance(code, str):
                raise InvalidSubjectId(f"id: must be a string, not {type(code).__name__}")
            code = validate_uscc(code) if kind is SubjectKind.ORGANIZATION else (
                validate_id_number(code))
            update = {**update, "kind": kind, "id": code}
        if update and "legal_representative" in update:
            rep = update["legal_representative"]
            if rep is not None and not (isinstance(rep, Subject)
                                        and rep.kind is SubjectKind.PERSON):
                raise ValueError(_NOT_A_PERSON)
        return super().model_copy(update=update, deep=deep)

    @classmethod
    def organization(
        cls,
        uscc: str,
        name: str | None = None,
        legal_representative: Subject | str | None = None,
        *,
        allow: Iterable[str] = (),
    ) -> Subject:
        """An organisation, by 统一社会信用代码.

        Args:
            uscc: the code; spaces, hyphens and full-width characters are tolerated.
            name: the organisation's name, for display.
            legal_representative: the 法定代表人, as a person ``Subject`` or an id number.
            allow: pilot-period codes accepted despite a failing checksum.

        Raises:
            InvalidSubjectId: the code (or the representative's id number) is invalid.
        """
        rep = legal_representative
        if isinstance(rep, str):
            rep = cls.person(rep)
        code = validate_uscc(uscc, allow=allow)
        return cls._made({"kind": SubjectKind.ORGANIZATION, "id": code, "name": name,
                          "legal_representative": rep})

    @classmethod
    def person(cls, id_number: str, name: str | None = None) -> Subject:
        """A natural person, by 居民身份证号码 (15-digit legacy numbers are upgraded).

        Raises:
            InvalidSubjectId: the number is invalid; the message masks it.
        """
        code = validate_id_number(id_number)
        return cls._made({"kind": SubjectKind.PERSON, "id": code, "name": name})

    @classmethod
    def _made(cls, data: dict[str, Any]) -> Self:
        # The id is valid and normalised: pydantic checks the rest, the id is not checked
        # twice (see _valid_id).
        try:
            made: Self = cls.__pydantic_validator__.validate_python(data, context=_VALIDATED)
        except ValidationError as exc:
            raise _id_error(exc) from None
        return made

    @classmethod
    def parse(cls, code: str, name: str | None = None, *, allow: Iterable[str] = ()) -> Subject:
        """A subject from a code of either kind, telling the kind by its shape
        (:func:`~credit_check._ids.detect_kind`)."""
        if detect_kind(code) == "person":
            return cls.person(code, name)
        return cls.organization(code, name, allow=allow)

    @property
    def masked_id(self) -> str:
        """The id as it may be shown: masked for a person, in clear for an organisation."""
        return mask_id(self.id) if self.kind is SubjectKind.PERSON else self.id

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, (self.masked_id if key == "id" else value)

    def public_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a person's id (and representative's id) masked."""
        data: dict[str, Any] = {"kind": self.kind.value, "id": self.masked_id, "name": self.name}
        if self.legal_representative is not None:
            data["legal_representative"] = self.legal_representative.public_dict()
        return data


# The validation context of the factories, which validate the id themselves. Compared by
# identity: no context built elsewhere turns the check off.
_VALIDATED: dict[str, Any] = {}
_NOT_A_PERSON = ("legal_representative: a legal representative (法定代表人) is a natural "
                 "person; give an id number or Subject.person(...)")


def _id_error(exc: ValidationError) -> Exception:
    """The InvalidSubjectId that made a Subject's validation fail, else the error itself."""
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, InvalidSubjectId):
            return cause
    return exc
