"""Who may talk to the viewer: same-origin pages only, and on a non-loopback ``--host`` only holders of the token.

viser accepts every websocket and serves every page, so any page open in the same browser (another origin) could
read the point clouds and camera images and drive the GUI (exports included). :class:`AccessPolicy` decides per
HTTP request (page GETs and websocket upgrades alike), and :func:`install_guard` puts it in front of viser's own
request handling.

Rules (:meth:`AccessPolicy.refusal`):

* ``Origin``, when sent (browsers always send it on websocket upgrades), must be the viewer's own origin: the
  scheme plus exactly the ``Host`` the request was sent to. Non-browser clients that send no ``Origin`` pass.
* Bound to loopback: the ``Host`` must name this machine (``localhost``, ``127.x.y.z``, ``[::1]``), so a foreign
  DNS name rebound to 127.0.0.1 cannot pass as same-origin.
* Bound to anything else: every request needs the access token, as ``?token=...`` in the URL (printed at start;
  the page's response sets it as a ``SameSite=Strict`` cookie, which the browser then sends with its websocket
  upgrade) or that cookie.

Hooking in: viser (``viser.infra.WebsockServer``) runs ``websockets.asyncio.server.serve(...,
process_request=viser_http_server)``; the resulting :class:`websockets.asyncio.server.Server` reads its public
``process_request`` attribute for every connection. :func:`install_guard` finds that server by its listening
port and wraps ``process_request``; a refused request gets ``403`` before any scene message is sent.
"""

from __future__ import annotations

import gc
import hmac
import http
import http.cookies
import inspect
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

TOKEN_PARAMETER = "token"
COOKIE_PREFIX = "vggt_mv_token_"


class GuardError(RuntimeError):
    """The access guard could not be put in front of the viser server (the viewer must not run without it)."""


def is_loopback(host: str) -> bool:
    """``host`` names only this machine (``localhost``, ``127.x.y.z``, ``::1``; brackets allowed)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(netloc: str) -> str:
    """``host:port`` / ``[::1]:port`` / ``host`` -> the host part."""
    netloc = netloc.strip()
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


@dataclass
class AccessPolicy:
    """``bind_host`` as given to ``--host``; ``port`` the bound one; ``token`` required when not None (made by
    :meth:`for_host` for a non-loopback host)."""

    bind_host: str
    port: int
    token: str | None = None
    refused: list[str] = field(default_factory=list)  # reasons of refused requests, newest last (for the log)

    @classmethod
    def for_host(cls, bind_host: str, port: int) -> AccessPolicy:
        token = None if is_loopback(bind_host) else secrets.token_urlsafe(24)
        return cls(bind_host, port, token)

    @property
    def cookie_name(self) -> str:
        return f"{COOKIE_PREFIX}{self.port}"

    def url_suffix(self) -> str:
        """What the printed URL ends with (``/?token=...``, or ``""`` on loopback)."""
        return "" if self.token is None else f"/?{TOKEN_PARAMETER}={self.token}"

    def presented_token(self, headers: Mapping[str, str], path: str) -> str | None:
        """The token in the URL query, else in our cookie (None when neither has one)."""
        query = parse_qs(urlsplit(path).query)
        if query.get(TOKEN_PARAMETER):
            return query[TOKEN_PARAMETER][0]
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(headers.get("Cookie", ""))
        except http.cookies.CookieError:
            return None
        morsel = cookies.get(self.cookie_name)
        return None if morsel is None else morsel.value

    def refusal(self, headers: Mapping[str, str], path: str) -> str | None:
        """Why a request with these headers for this path is refused, or None when it is allowed."""
        host = headers.get("Host", "")
        if is_loopback(self.bind_host) and not is_loopback(split_host(host)):
            return f"Host {host!r} is not this machine (the viewer is bound to {self.bind_host})"
        origin = headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return f"cross-origin request from {origin!r} (only pages served by this viewer at {host} may connect)"
        if self.token is not None:
            presented = self.presented_token(headers, path)
            if presented is None or not hmac.compare_digest(presented, self.token):
                return "the access token is missing or wrong: open the URL with ?token=... printed at start"
        return None

    def cookie_header(self) -> str:
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"


# websockets' process_request: a function or a coroutine function (websockets awaits what it returns, when awaitable)
RequestHandler = Callable[[ServerConnection, Request], Awaitable[Response | None] | Response | None]


def guarded(
    policy: AccessPolicy, inner: RequestHandler | None
) -> Callable[[ServerConnection, Request], Awaitable[Response | None]]:
    """``process_request`` that refuses what ``policy`` refuses (403 with the reason) and otherwise defers to
    ``inner`` (viser's page server, synchronous or not), adding the token cookie to pages fetched with ``?token=``."""

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        reason = policy.refusal(request.headers, request.path)
        if reason is not None:
            policy.refused.append(reason)
            body = f"vggt-mv viewer: refused: {reason}\n".encode()
            headers = Headers({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))})
            return Response(http.HTTPStatus.FORBIDDEN, "Forbidden", headers, body)
        response = None if inner is None else inner(connection, request)
        if inspect.isawaitable(response):
            response = await response
        if response is not None and policy.token is not None:
            query = parse_qs(urlsplit(request.path).query)
            if query.get(TOKEN_PARAMETER):
                response.headers["Set-Cookie"] = policy.cookie_header()
        return response

    return process_request


def _listening_server(port: int) -> Server:
    """The :class:`websockets.asyncio.server.Server` listening on ``port`` in this process."""
    for candidate in gc.get_objects():
        if issubclass(type(candidate), Server) and candidate.is_serving():
            if any(sock.getsockname()[1] == port for sock in candidate.sockets):
                return candidate
    raise GuardError(
        f"no websockets server listens on port {port} in this process: this viser version serves differently; "
        "the viewer refuses to run unguarded (install a viser version that runs websockets.asyncio.server.serve)"
    )


def install_guard(port: int, policy: AccessPolicy) -> None:
    """Put ``policy`` in front of the viser server listening on ``port`` (raises :class:`GuardError` when it cannot
    be found); connections opened before this are closed (they reconnect and are checked)."""
    server = _listening_server(port)
    server.process_request = guarded(policy, server.process_request)

    def drop_earlier_connections() -> None:  # runs in the server's event loop thread
        for connection in list(server.handlers):
            connection.transport.abort()

    server.get_loop().call_soon_threadsafe(drop_earlier_connections)
