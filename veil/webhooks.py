"""Telling a webhook that a job ended: a JSON POST to a URL the operator or caller gave.

A caller's URL makes the server send a request where the caller chose, so it is
checked before the job is accepted and again just before sending (DNS can change in
between): http or https only, and every address its host resolves to must be public,
unless the operator allowed the host (``--allow-webhook-host``). The request then goes
to the very address that was checked, never through a second lookup a rebinding DNS
server could answer differently, and a redirect is not followed (it could point
anywhere). URLs carry secrets (tokens in the userinfo, query or path), so logs and
messages show only ``safe_url``.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from veil.errors import VeilError

TIMEOUT = 10.0
"""Seconds a webhook may take to accept the connection, and then to answer."""
DEADLINE = 20.0
"""Seconds a whole webhook call may take, however its receiver paces its bytes."""

SCHEMES = {"http": 80, "https": 443}
"""The schemes a webhook may use, and their default ports."""


class WebhookError(VeilError):
    """A webhook could not be told: refused, unreachable, or it answered with an error."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = safe_url(url)
        self.reason = reason
        super().__init__(f"webhook {self.url}: {reason}")


class WebhookURLError(WebhookError):
    """A webhook URL veil will not send to (400 where a caller gave it)."""

    status_code = 400


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: where to connect and what to ask for."""

    scheme: str
    host: str
    """The host as the URL names it: the ``Host`` header and the name TLS verifies."""
    port: int
    addresses: tuple[str, ...]
    """The addresses the host resolved to when checked; the only ones connected to."""
    target: str
    """Path and query, the request line's target."""
    authorization: str | None
    """Basic credentials from the URL's userinfo, if it has any."""


def safe_url(url: str) -> str:
    """``url`` fit for logs: scheme, host and port only. Userinfo and query hold tokens,
    and so does the path of many webhook services (Slack, Discord), so all three go."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<malformed URL>"
    if not parts.scheme:
        return "<not a URL>"
    shown = f"[{host}]" if ":" in host else host
    if port is not None:
        shown += f":{port}"
    elided = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{shown}{elided}"


def check_webhook_url(url: str, allowed_hosts: Collection[str] | None) -> Target:
    """Where a POST to ``url`` would go, if veil may send one; else ``WebhookURLError``.

    ``allowed_hosts`` names hosts (as written in URLs) and addresses that may be
    loopback, private, link-local or otherwise non-public. ``None`` lifts the address
    check altogether: only for a URL the operator configured, never one a caller gave.
    """
    try:
        url.encode("utf-8")  # lone surrogates (JSON's \ud800) are no URL
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except (ValueError, UnicodeError) as exc:
        raise WebhookURLError(url, "not a valid URL") from exc
    if scheme not in SCHEMES:
        given = f"not {scheme}" if scheme else "and this URL names no scheme"
        raise WebhookURLError(url, f"only http and https webhooks are allowed, {given}")
    if not host:
        raise WebhookURLError(url, "the URL names no host")
    port = port or SCHEMES[scheme]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookURLError(url, f"cannot resolve host {host}") from exc
    # A name may resolve to several addresses; any of them could be the one used.
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    if allowed_hosts is not None and not _allowed(host, addresses, allowed_hosts):
        for address in addresses:
            kind = _not_public(address)
            if kind:
                named = f"{host} is" if _normal(host) == _normal(address) else f"{host} resolves to"
                raise WebhookURLError(
                    url,
                    f"{named} {kind} address; webhooks may reach only public addresses "
                    "unless the operator allows the host (--allow-webhook-host)",
                )
    userinfo = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        userinfo = "Basic " + base64.b64encode(credentials.encode()).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port, addresses, target, userinfo)


def post_json(
    url: str, payload: Mapping[str, Any], *, allowed_hosts: Collection[str] | None
) -> None:
    """POST ``payload`` as JSON to ``url``, checked by ``check_webhook_url`` at this
    moment; raises ``WebhookError`` when it is refused, cannot be delivered, or is not
    answered with a 2xx (a redirect included: it is not followed)."""
    target = check_webhook_url(url, allowed_hosts)
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if target.authorization:
        headers["Authorization"] = target.authorization
    connection = _connection(target)
    # The socket timeout bounds each read; a receiver that drips a byte at a time would
    # hold the job's worker for ever. At the deadline the connection is cut.
    cut = threading.Event()
    deadline = threading.Timer(DEADLINE, _cut, args=(connection, cut))
    deadline.start()
    try:
        connection.request("POST", target.target, body=body, headers=headers)
        response = connection.getresponse()  # its body does not matter, only its status
    except (OSError, http.client.HTTPException) as exc:
        # The event, not the timer's thread: that may still be alive while it cuts.
        late = " in time" if cut.is_set() else ""
        raise WebhookError(url, f"not delivered{late}: {exc or type(exc).__name__}") from exc
    finally:
        deadline.cancel()
        connection.close()
    if not 200 <= response.status < 300:
        moved = " (redirects are not followed)" if 300 <= response.status < 400 else ""
        raise WebhookError(url, f"answered {response.status} {response.reason}{moved}")


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """End a webhook call that passed its deadline: reads on its socket fail at once."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _allowed(host: str, addresses: tuple[str, ...], allowed_hosts: Collection[str]) -> bool:
    """The host as written is allowed, or every address it resolved to is."""
    allowed = {_normal(h) for h in allowed_hosts}
    return _normal(host) in allowed or all(_normal(a) in allowed for a in addresses)


def _normal(host: str) -> str:
    """A host name or address in one spelling: lower case, no brackets, no trailing dot,
    addresses compressed (``0:0::1`` is ``::1``)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _not_public(address: str) -> str | None:
    """What kind of non-public address ``address`` is ("a loopback"), or None if public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # Forms that carry an IPv4 address: ::ffff:127.0.0.1 reaches 127.0.0.1; 6to4
        # (2002::/16) and Teredo addresses route to the address they embed.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    checks = (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
        # Shared (carrier NAT) space and the like: not private, not global either.
        ("a non-public", not ip.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def _connection(target: Target) -> http.client.HTTPConnection:
    """A connection to ``target`` that connects to its checked addresses only. Proxies
    from the environment are not used: they would reach the host by name again."""
    if target.scheme == "https":
        return _PinnedHTTPS(target)
    return _PinnedHTTP(target)


def _connect(target: Target) -> socket.socket:
    """A TCP connection to the first of the target's checked addresses that answers."""
    error: OSError = OSError(f"{target.host} has no address")
    for address in target.addresses:
        try:
            return socket.create_connection((address, target.port), TIMEOUT)
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target) -> None:
        super().__init__(target.host, target.port, timeout=TIMEOUT)
        self._target = target

    def connect(self) -> None:
        self.sock = _connect(self._target)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=TIMEOUT, context=self._tls)
        self._target = target

    def connect(self) -> None:
        # The certificate is checked against the URL's host name, not the address.
        self.sock = self._tls.wrap_socket(_connect(self._target), server_hostname=self.host)
