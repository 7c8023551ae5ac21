"""Fetch an ``http(s)://`` input without letting a caller reach what it should not (SSRF).

Off unless the policy allows URLs. When allowed, a URL is fetched only if:

* its scheme is ``http`` or ``https`` and it carries no user name or password;
* its host is on the allow-list when one is set (``InputPolicy.url_hosts`` /
  ``CLASSER_URL_HOSTS``); with no list, any host;
* every address the host resolves to (one lookup, with the fetch's time limit) is public:
  not loopback, private, shared (CGNAT), link-local, multicast, reserved or unspecified, IPv4
  or IPv6, the IPv4 inside IPv4-mapped, 6to4, Teredo and NAT64 addresses included. Numeric
  spellings (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) resolve to the address they mean and
  are checked as that. Hosts on the allow-list may also be on loopback or private addresses
  (the operator named them); link-local, multicast, reserved and unspecified never are;
* the connection goes to the checked address (no second lookup: DNS rebinding cannot swap
  it), TLS still verifies the certificate against the host name;
* it answers ``200`` at once: redirects are not followed; the body fits the byte limit, and
  everything (lookup, connect, body) ends within ``URL_TIMEOUT_S``.

Any failure is one error, ``url_not_allowed`` (422), with the same message whatever happened
(refused address, closed port, timeout, 404, redirect, too large), so the error tells a
caller nothing about the target.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from ..errors import InputNotAllowedError, InvalidRequestError
from .limits import MAX_IMAGE_BYTES, URL_TIMEOUT_S
from .policy import InputPolicy

__all__ = ["address_allowed", "fetch_url"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _not_allowed(url: str) -> InputNotAllowedError:
    # One message for every failure: what happened at the target is not the caller's to learn.
    return InputNotAllowedError(
        "url_not_allowed",
        "The URL was not fetched. A URL must be http(s), name an allowed host on a public address "
        "and answer 200 at once (no redirects) within the time and size limits.",
        {"url": url[:200]},
    )


def _embedded_v4(ip: _IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        out += list(ip.teredo)
    if ip in _NAT64:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def address_allowed(address: str | _IPAddress, *, private_ok: bool = False) -> bool:
    """Whether a URL fetch may connect to ``address``.

    ``private_ok`` (hosts on the allow-list) also admits loopback and private addresses;
    link-local (cloud metadata), multicast, reserved and unspecified are never admitted.

    Example:
        >>> [address_allowed(a) for a in ("93.184.216.34", "127.0.0.1", "::ffff:10.0.0.1", "169.254.169.254")]
        [True, False, False, False]
    """
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if any(not address_allowed(inner, private_ok=private_ok) for inner in _embedded_v4(ip)):
        return False
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
        return False
    if private_ok:
        return True
    return ip.is_global and not (ip.is_private or ip.is_loopback)


def _host_listed(host: str, hosts: tuple[str, ...]) -> bool:
    for h in hosts:
        if host == h or (h.startswith(".") and (host.endswith(h) or host == h[1:])):
            return True
    return False


def _resolve(host: str, port: int, timeout: float) -> list[str] | None:
    """The addresses of ``host`` (one lookup, on a daemon thread so a hung resolver cannot hold us)."""
    box: dict[str, list[str]] = {}

    def work() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            box["ips"] = [str(info[4][0]) for info in infos]
        except (OSError, UnicodeError, ValueError):
            box["ips"] = []

    t = threading.Thread(target=work, name="classer-url-resolve", daemon=True)
    t.start()
    t.join(max(timeout, 0.0))
    return box.get("ips")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to a fixed, already-checked address; ``host`` is only the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """The same over TLS; the certificate is verified against the host name, not the address."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, address, timeout)
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def fetch_url(
    url: str,
    *,
    policy: InputPolicy,
    max_bytes: int = MAX_IMAGE_BYTES,
    timeout: float = URL_TIMEOUT_S,
) -> bytes:
    """GET ``url`` under ``policy``: the body's bytes, or one ``url_not_allowed`` error.

    Example:
        >>> from classer_local.inputs import REMOTE
        >>> fetch_url("https://example.com/cat.jpg", policy=REMOTE.with_urls(False))
        Traceback (most recent call last):
        ...
        classer_local.errors.InvalidRequestError: ...
    """
    if not policy.urls_allowed():
        raise InvalidRequestError(
            "url_fetch_disabled",
            "Fetching URLs is disabled. Pass the file's bytes or base64 instead, or allow URL "
            "fetching with CLASSER_ALLOW_URLS=1 (or allow_urls=True).",
            {"url": url[:200]},
        )
    deadline = time.monotonic() + timeout
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        raise _not_allowed(url) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host or parts.username is not None or parts.password is not None:
        raise _not_allowed(url)
    if any(c.isspace() or ord(c) < 32 for c in url.strip()):
        raise _not_allowed(url)
    port = port or (443 if scheme == "https" else 80)
    hosts = policy.hosts()
    listed = _host_listed(host, hosts)
    if hosts and not listed:
        raise _not_allowed(url)
    addresses = _resolve(host, port, deadline - time.monotonic())
    if not addresses or not all(address_allowed(a, private_ok=listed) for a in addresses):
        raise _not_allowed(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, port, addresses[0], timeout=max(deadline - time.monotonic(), 0.01))
    # Socket timeouts bound each read, not the whole: a server dripping a byte at a time would
    # outlast them. At the deadline a watchdog shuts the socket, and the read in progress fails.
    held: list[socket.socket] = []

    def abort() -> None:
        for sock in held or ([conn.sock] if conn.sock is not None else []):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.connect()
        if conn.sock is not None:
            held.append(conn.sock)
        conn.request("GET", target, headers={"User-Agent": "classer-local", "Accept-Encoding": "identity",
                                             "Connection": "close"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise _not_allowed(url)
        declared = resp.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > max_bytes:
            raise _not_allowed(url)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = resp.read1(min(65536, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes or time.monotonic() > deadline:
            raise _not_allowed(url)
        return b"".join(chunks)
    except InputNotAllowedError:
        raise
    except (OSError, http.client.HTTPException, ValueError):
        raise _not_allowed(url) from None
    finally:
        watchdog.cancel()
        conn.close()
