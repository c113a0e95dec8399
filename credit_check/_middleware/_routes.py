"""Route rules for the middleware: which requests are guarded, and where the identifier is.

A :class:`Route` pairs an HTTP method and a path pattern with a scenario and extractors;
a :class:`RouteTable` finds the rule for a request with precompiled regexes indexed by
method, so an unguarded request costs one dict lookup and a few regex tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from credit_check._codes import scenario_code
from credit_check._models import Scenario

if TYPE_CHECKING:
    from credit_check._middleware._body import RequestData

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|path|int))?\}")
_PARAM_REGEX = {"str": "[^/]+", "path": ".+", "int": "[0-9]+"}


class ExtractionProblem(ValueError):
    """A value is present but has the wrong shape (an object where a string is expected)."""


class Extractor:
    """Where a value is found in a request; subclasses name the source.

    Attributes:
        name: the field name (a dotted path for JSON).
        source: ``json``, ``form``, ``query``, ``header`` or ``path``.
        needs_body: whether the request body must be read to extract the value.
    """

    source: ClassVar[str] = ""
    needs_body: ClassVar[bool] = False
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError(f"{type(self).__name__} needs a field name")
        self.name = name

    @property
    def label(self) -> str:
        """How problem responses name the field, e.g. ``json:bidder.uscc``."""
        return f"{self.source}:{self.name}"

    def extract(self, request: RequestData) -> list[str]:
        """Every value found (an empty list when the field is missing or blank)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name

    def __hash__(self) -> int:
        return hash((type(self), self.name))


def _strings(values: Sequence[Any], ex: Extractor) -> list[str]:
    out = []
    for value in values:
        if type(value) is str:  # the usual case, before the general checks
            text = value.strip()
        elif value is None:
            continue
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ExtractionProblem(f"{ex.label} must be a string, not {type(value).__name__}")
        else:
            text = str(value).strip()
        if text:
            out.append(text)
    return out


class FromJSON(Extractor):
    """A field of a JSON body by dotted path: ``"bidder.uscc"``; ``*`` spans a list
    (``"consortium.*.uscc"``) and a number indexes one (``"members.0.uscc"``)."""

    source = "json"
    needs_body = True
    __slots__ = ("_keys_only", "_parts")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._parts = tuple(name.split("."))
        # Without "*" or an index the path only walks objects: no list to fan out over.
        self._keys_only = not any(p == "*" or p.isdigit() for p in self._parts)

    def extract(self, request: RequestData) -> list[str]:
        if self._keys_only:
            node = request.json()
            for part in self._parts:
                # Parsed JSON objects are dicts: the ABC check only for anything else.
                if type(node) is not dict and not isinstance(node, Mapping):
                    return []
                if part not in node:
                    return []
                node = node[part]
            if type(node) is str:  # the usual case: one string
                text = node.strip()
                return [text] if text else []
            return _strings(node if isinstance(node, list) else (node,), self)
        nodes: list[Any] = [request.json()]
        for part in self._parts:
            nxt: list[Any] = []
            for node in nodes:
                if part == "*" and isinstance(node, list):
                    nxt.extend(node)
                elif isinstance(node, Mapping) and part in node:
                    nxt.append(node[part])
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    nxt.append(node[int(part)])
            nodes = nxt
        if len(nodes) == 1 and isinstance(nodes[0], list):
            nodes = nodes[0]
        return _strings(nodes, self)


class FromForm(Extractor):
    """A field of an urlencoded or multipart form body (every value of a repeated field)."""

    source = "form"
    needs_body = True
    __slots__ = ()

    def extract(self, request: RequestData) -> list[str]:
        return _strings(request.form().get(self.name, []), self)


class FromQuery(Extractor):
    """A query-string parameter (every value of a repeated parameter)."""

    source = "query"
    __slots__ = ()

    def extract(self, request: RequestData) -> list[str]:
        return _strings(request.query().get(self.name, []), self)


class FromHeader(Extractor):
    """A request header, by case-insensitive name; a comma-separated value lists several."""

    source = "header"
    __slots__ = ()

    def extract(self, request: RequestData) -> list[str]:
        value = request.headers.get(self.name.lower())
        return _strings(value.split(","), self) if value is not None else []


class FromPath(Extractor):
    """A parameter of the route's path pattern: ``FromPath("uscc")`` for ``/firms/{uscc}``."""

    source = "path"
    __slots__ = ()

    def extract(self, request: RequestData) -> list[str]:
        value = request.path_params.get(self.name)
        return _strings((value,), self) if value is not None else []


@dataclass(frozen=True)
class Route:
    """One guarded endpoint: method and path pattern → scenario, and where the ids are.

    Args:
        method: the HTTP method (``"POST"``); ``"*"`` matches any method.
        path: a path pattern; ``{name}`` matches one segment, ``{name:path}`` the rest
            and ``{name:int}`` digits. The pattern matches the whole path. ``"*"`` is for
            view decorators, where the framework has matched the path already.
        scenario: the :class:`~credit_check.Scenario` (or its value, or a code the
            catalogue names) of the transaction.
        subject: where the subject's identifier is (USCC or id number, told by shape).
        legal_representative: where the organisation's 法定代表人 id number is, if given.
        members: where the members of a consortium are (a list field, or a repeated
            one); with it every subject is checked together and the group outcome rules.
        case_id: where the case id (办件编号) is, if given.
        item_code: where the item code (事项编码) is, if given.
        department: the department handling the case, overriding the middleware's.
    """

    method: str
    path: str
    scenario: Scenario | str
    subject: Extractor | None = None
    legal_representative: Extractor | None = None
    members: Extractor | None = None
    case_id: Extractor | None = None
    item_code: Extractor | None = None
    department: str | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    needs_body: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.subject is None and self.members is None:
            raise ValueError(f"route {self.method} {self.path}: give subject or members")
        for name in ("subject", "legal_representative", "members", "case_id", "item_code"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Extractor):
                raise TypeError(f"route {self.method} {self.path}: {name} must be an "
                                f"extractor such as FromJSON('a.b'), not {value!r}")
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "scenario", scenario_code(self.scenario))
        object.__setattr__(self, "regex", compile_path(self.path))
        names = set(self.regex.groupindex)
        for ex in self.extractors:
            if isinstance(ex, FromPath) and ex.name not in names and self.path != "*":
                raise ValueError(f"route {self.method} {self.path}: no path parameter "
                                 f"{{{ex.name}}} for {ex!r}")
        object.__setattr__(self, "needs_body", any(ex.needs_body for ex in self.extractors))

    @property
    def extractors(self) -> tuple[Extractor, ...]:
        """Every extractor the route uses."""
        return tuple(ex for ex in (self.subject, self.legal_representative, self.members,
                                   self.case_id, self.item_code) if ex is not None)


def compile_path(pattern: str) -> re.Pattern[str]:
    """The anchored regex of a path pattern (``/bids/{tender_id}``)."""
    if pattern == "*":
        return re.compile(r"(?!)")  # matched by the framework, never by the table
    if not pattern.startswith("/"):
        raise ValueError(f"path pattern {pattern!r} must start with '/'")
    out, pos = ["^"], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{_PARAM_REGEX[m.group(2) or 'str']})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]) + "$")
    return re.compile("".join(out))


class RouteTable:
    """The routes indexed by method, for fast matching."""

    __slots__ = ("_any", "_by_method", "routes")

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        for r in self.routes:
            if not isinstance(r, Route):
                raise TypeError(f"routes must be Route objects, not {r!r}")
        self._any = tuple(r for r in self.routes if r.method == "*")
        by: dict[str, list[Route]] = {}
        for r in self.routes:
            if r.method != "*":
                by.setdefault(r.method, []).append(r)
        # Rules are tried in the order given; "*" rules come after a method's own rules.
        self._by_method = {m: (*rs, *self._any) for m, rs in by.items()}

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first rule matching the request, with its path parameters, or None."""
        candidates = self._by_method.get(method, self._any)
        for route in candidates:
            m = route.regex.match(path)
            if m is not None:
                return route, m.groupdict()
        return None
