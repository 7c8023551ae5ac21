"""Who may make the library read what: one ``InputPolicy`` per caller, passed down to every reader.

``TRUSTED`` (in-process callers, jobs a trusted caller created on this machine): a string may
name a local file. ``REMOTE`` (anything that came over the network): nothing is ever a path on
this machine, whatever its spelling. URLs are a separate switch on both (off unless
``CLASSER_ALLOW_URLS=1`` or ``allow_urls=True``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .. import config

__all__ = ["REMOTE", "TRUSTED", "InputPolicy"]


@dataclass(frozen=True)
class InputPolicy:
    """What a caller's inputs may point at.

    Args:
        allow_paths: strings, ``Path`` objects and ``file:`` URLs may name files on this machine.
        allow_urls: ``http(s)://`` inputs are fetched; ``None`` reads ``CLASSER_ALLOW_URLS``
            when the URL is met (so a server started with it set fetches).
        url_hosts: when not empty, the only hosts a URL may name (exact names; ``.example.com``
            also matches its subdomains). Hosts on the list may be on private addresses (an
            air-gapped network's file server); ``()`` reads ``CLASSER_URL_HOSTS``
            (comma-separated), and with no list at all only public addresses are fetched.

    Example:
        >>> InputPolicy(allow_paths=False).with_urls(True).urls_allowed()
        True
    """

    allow_paths: bool
    allow_urls: bool | None = None
    url_hosts: tuple[str, ...] = ()

    def urls_allowed(self) -> bool:
        if self.allow_urls is None:
            return config.env_flag("CLASSER_ALLOW_URLS", False)
        return bool(self.allow_urls)

    def hosts(self) -> tuple[str, ...]:
        """The host allow-list in force: ``url_hosts``, else ``CLASSER_URL_HOSTS``, lower-cased."""
        raw = self.url_hosts or tuple(os.environ.get("CLASSER_URL_HOSTS", "").split(","))
        return tuple(h.strip().lower().rstrip(".") for h in raw if h.strip())

    def with_urls(self, allow_urls: bool | None) -> InputPolicy:
        """This policy with URLs switched on/off (``None``: unchanged), for the old ``allow_urls=`` keyword."""
        return self if allow_urls is None else replace(self, allow_urls=bool(allow_urls))


TRUSTED = InputPolicy(allow_paths=True)
"""In-process callers: strings may be paths on this machine; URLs as ``CLASSER_ALLOW_URLS`` says."""
REMOTE = InputPolicy(allow_paths=False)
"""Anything from the network: never a path on this machine; URLs as ``CLASSER_ALLOW_URLS`` says."""
