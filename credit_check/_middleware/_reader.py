"""Reading a guarded request's body: one limit, one reading of ``Content-Length``, for every
edge (the WSGI and ASGI middlewares and the Django, Flask and FastAPI adapters).

A body over the limit is refused (413) without reading more of it than the limit: unread
when ``Content-Length`` says so, else as soon as the bytes read pass it. A
``Content-Length`` that is not a plain number of bytes (``²``, ``-1``, ``1e3``) is
refused (400) unread: frameworks read such a body differently (Django raises on it), so
no reading of it is safe. Both hold in shadow mode too: the middleware never reads more
than it was allowed, and cannot read what is not framed.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from credit_check._middleware import _respond as respond
from credit_check._middleware._respond import Reply

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from starlette.types import Message
else:
    WSGIEnvironment = Message = Any

MAX_BODY = 1_048_576
"""The default largest body read on a guarded route (1 MiB)."""
_CHUNK = 65_536


class ClientGone(Exception):
    """The client disconnected before sending the whole body (ASGI): nothing to answer."""


class BodyRefused(Exception):
    """The body is not read: it is over the limit (413), or its ``Content-Length`` is no
    plain number (400).

    Attributes:
        reply: the problem response that answers the request.
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def declared_length(value: str | None, limit: int) -> int | None:
    """``Content-Length`` as a number of bytes, None when absent.

    Raises:
        BodyRefused: not plain ASCII digits (``str.isdigit`` alone accepts ``²``, which
            ``int`` refuses), or over ``limit``.
    """
    if value is None or value == "":
        return None
    text = value.strip()  # optional white space around a field value (RFC 9110)
    if not (text.isascii() and text.isdigit()):
        raise BodyRefused(respond.bad_length())
    length = int(text)
    if length > limit:
        raise BodyRefused(respond.too_large(limit))
    return length


def _too_large(limit: int) -> BodyRefused:
    return BodyRefused(respond.too_large(limit))


def read_wsgi(environ: WSGIEnvironment, limit: int) -> bytes:
    """Read ``wsgi.input`` once and put a ``BytesIO`` of it in its place.

    Raises:
        BodyRefused: see :func:`declared_length`, or the bytes are over ``limit`` (nothing
            more is read then).
    """
    length = declared_length(environ.get("CONTENT_LENGTH"), limit)
    stream = environ["wsgi.input"]
    if length is not None:
        body = _read_exactly(stream, length)
    elif environ.get("wsgi.input_terminated") or "chunked" in environ.get(
            "HTTP_TRANSFER_ENCODING", "").lower():
        # No length but the server ends the stream for us: read one byte past the limit
        # so an over-limit body is told apart from one exactly at it.
        body = _read_exactly(stream, limit + 1)
        if len(body) > limit:
            raise _too_large(limit)
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        body = b""  # PEP 3333: without CONTENT_LENGTH there is no body to read
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _read_exactly(stream: Any, length: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = stream.read(min(length, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


async def receive_body(receive: Callable[[], Awaitable[Message]], declared: str | None,
                       limit: int) -> bytes:
    """The body from ASGI ``http.request`` messages.

    Raises:
        BodyRefused: see :func:`declared_length`, or the bytes are over ``limit`` (nothing
            more is received then).
        ClientGone: the client disconnected first.
    """
    declared_length(declared, limit)
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    chunk: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: the body in one message
        if len(chunk) > limit:
            raise _too_large(limit)
        return chunk
    chunks = [chunk]
    size = len(chunk)
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def read_kept(declared: str | None, read: Callable[[], bytes], limit: int) -> bytes:
    """A body the framework reads and keeps for the view (Django's ``request.body``,
    Flask's ``get_data(cache=True)``): refused unread on its ``Content-Length``, and
    refused when the bytes read are over ``limit``.

    Raises:
        BodyRefused: see :func:`declared_length`, or the bytes are over ``limit``.
    """
    declared_length(declared, limit)
    body = read()
    if len(body) > limit:
        raise _too_large(limit)
    return body


async def read_kept_async(declared: str | None, read: Callable[[], Awaitable[bytes]],
                          limit: int) -> bytes:
    """:func:`read_kept` for a framework that reads in a coroutine (Starlette's
    ``await request.body()``)."""
    declared_length(declared, limit)
    body = await read()
    if len(body) > limit:
        raise _too_large(limit)
    return body
