"""The request as extractors see it, and the body parsers (JSON, urlencoded, multipart).

Parsing is lazy: a body is parsed only when a rule's extractor asks for it, and at most
once. A body the rule cannot read raises :class:`BodyProblem`, which becomes a 400 or
415 problem response naming what was expected.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload
from urllib.parse import parse_qs

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class BodyProblem(Exception):
    """The body cannot be read the way the rule needs.

    Attributes:
        status: 400 (malformed) or 415 (unsupported content type).
        expected: the content type(s) the rule reads.
    """

    def __init__(self, message: str, *, status: int, expected: tuple[str, ...]) -> None:
        super().__init__(message)
        self.status = status
        self.expected = expected


def split_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """The lower-cased media type and its parameters."""
    if not value:
        return "", {}
    mime, _, rest = value.partition(";")
    params = {}
    for item in rest.split(";"):
        key, eq, val = item.strip().partition("=")
        if eq:
            params[key.strip().lower()] = val.strip().strip('"')
    return mime.strip().lower(), params


def _form_multipart(body: bytes, boundary: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    try:
        parser_type = _multipart_parser()
    except ImportError:
        parser_type = None
    if parser_type is None:
        return _form_multipart_email(body, boundary)
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    parser = parser_type(boundary.encode("latin-1"), callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises its own error tree
        raise BodyProblem(f"malformed multipart body: {exc}", status=400,
                          expected=FORM_TYPES) from None
    for headers, data in parts:
        disposition = headers.get(b"content-disposition", b"").decode("latin-1")
        _, params = split_content_type(disposition)
        name = params.get("name")
        if name is None or "filename" in params:
            continue  # files never carry an identifier
        fields.setdefault(name, []).append(_utf8(bytes(data)))
    return fields


def _multipart_parser() -> Any:
    # Imported lazily: python-multipart is an optional dependency (the fastapi extra).
    from python_multipart.multipart import MultipartParser

    return MultipartParser


def _form_multipart_email(body: bytes, boundary: str) -> dict[str, list[str]]:
    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart() or msg.defects:
        raise BodyProblem("malformed multipart body", status=400, expected=FORM_TYPES)
    fields: dict[str, list[str]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None or part.get_param("filename", header="content-disposition"):
            continue
        payload = part.get_payload(decode=True)
        fields.setdefault(str(name), []).append(_utf8(payload if isinstance(payload, bytes)
                                                      else b""))
    return fields


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyProblem("form field is not valid UTF-8", status=400,
                          expected=FORM_TYPES) from None


class RequestData:
    """What the extractors read: path parameters, query, headers and the body bytes.

    Args:
        headers: header values by lower-cased name.
        query_string: the raw query string.
        path_params: the route's path parameters.
        body: the body bytes, or None when the rule does not read the body.
        form: form fields already parsed by the framework (FastAPI consumes the stream
            of a form body without keeping the bytes).
    """

    __slots__ = ("_form", "_json", "_query", "body", "headers", "path_params", "query_string")

    _MISSING: Any = object()

    def __init__(self, *, headers: Mapping[str, str], query_string: str,
                 path_params: Mapping[str, str], body: bytes | None,
                 form: dict[str, list[str]] | None = None) -> None:
        self.headers = headers
        self.query_string = query_string
        self.path_params = path_params
        self.body = body
        self._json: Any = self._MISSING
        self._form: dict[str, list[str]] | None = form
        self._query: dict[str, list[str]] | None = None

    def query(self) -> dict[str, list[str]]:
        """The query parameters (parsed once)."""
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        return self._query

    def json(self) -> Any:
        """The parsed JSON body (parsed once).

        Raises:
            BodyProblem: not a JSON content type (415) or not valid JSON (400).
        """
        if self._json is self._MISSING:
            content_type = self.headers.get("content-type")
            if content_type != "application/json":  # the usual value needs no splitting
                mime, _ = split_content_type(content_type)
                if not mime and not self.body:
                    return None  # no body at all: the identifier is missing, not malformed
                if mime not in JSON_TYPES and not mime.endswith("+json"):
                    raise BodyProblem(f"expected a JSON body (application/json), got "
                                      f"{mime or 'no content type'}", status=415,
                                      expected=JSON_TYPES)
            try:
                self._json = json.loads(self.body or b"")
            except (ValueError, RecursionError) as exc:
                raise BodyProblem(f"malformed JSON body: {exc}", status=400,
                                  expected=JSON_TYPES) from None
        return self._json

    def form(self) -> dict[str, list[str]]:
        """The form fields (urlencoded or multipart, parsed once); file parts are skipped.

        Raises:
            BodyProblem: not a form content type (415) or a malformed body (400).
        """
        if self._form is None:
            mime, params = split_content_type(self.headers.get("content-type"))
            if not mime and not self.body:
                self._form = {}  # no body at all: the identifier is missing, not malformed
            elif mime == "application/x-www-form-urlencoded":
                try:
                    text = (self.body or b"").decode("utf-8")
                except UnicodeDecodeError:
                    raise BodyProblem("form body is not valid UTF-8", status=400,
                                      expected=FORM_TYPES) from None
                self._form = parse_qs(text, keep_blank_values=True)
            elif mime == "multipart/form-data" and params.get("boundary"):
                self._form = _form_multipart(self.body or b"", params["boundary"])
            else:
                raise BodyProblem(f"expected a form body ({' or '.join(FORM_TYPES)}), got "
                                  f"{mime or 'no content type'}", status=415,
                                  expected=FORM_TYPES)
        return self._form


class ASGIHeaders(Mapping[str, str]):
    """Header values by lower-cased name over an ASGI scope's raw headers, decoded only when
    asked for: a guarded JSON request reads two headers, not all of them.

    Repeated headers are joined with ``", "``, as in a dict built from every header.
    """

    __slots__ = ("_all", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._all: dict[str, str] | None = None

    def _decoded(self) -> dict[str, str]:
        if self._all is None:
            headers: dict[str, str] = {}
            for key, value in self._raw:
                name = key.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[name] = f"{headers[name]}, {text}" if name in headers else text
            self._all = headers
        return self._all

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str) -> str: ...
    @overload
    def get(self, key: str, /, default: Any) -> Any: ...

    def get(self, key: str, /, default: Any = None) -> Any:
        if self._all is not None or not key.isascii() or key != key.lower():
            return self._decoded().get(key, default)
        want = key.encode("ascii")
        size = len(want)
        found: str | None = None
        for name, value in self._raw:
            # An ASCII key matches only an ASCII name: no latin-1 letter lower-cases to ASCII.
            # bytes.lower() keeps the length, so other lengths need no lower-casing.
            if len(name) == size and (name == want or name.lower() == want):
                text = value.decode("latin-1")
                found = text if found is None else f"{found}, {text}"
        return default if found is None else found

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())


def wsgi_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """Header values by lower-cased name, from a WSGI environ."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers

