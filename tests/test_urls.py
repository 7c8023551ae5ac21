"""URL inputs cannot be turned against this machine or its network (SSRF).

The target is a real ``http.server`` on 127.0.0.1 that counts the requests it gets: refused URLs
must never reach it, whatever the spelling of its address, and every failure reads the same.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from classer_local.errors import InputNotAllowedError, InvalidRequestError
from classer_local.inputs import REMOTE, InputPolicy, load_images
from classer_local.inputs.urls import _host_listed, address_allowed, fetch_url

CAT = Path(__file__).parent / "fixtures" / "cifar_cat.jpg"
OPEN = InputPolicy(allow_paths=False, allow_urls=True)  # URLs on, no allow-list: public hosts only
LOCAL = InputPolicy(allow_paths=False, allow_urls=True, url_hosts=("127.0.0.1",))


@pytest.fixture()
def target():
    """A local server: /cat.jpg 200, /redirect 302 -> /cat.jpg, /missing 404, /slow (2 s), /big (1 MB)."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            if self.path == "/slow":
                time.sleep(2)
            if self.path == "/drip":  # a byte every 0.1 s: each read is quick, the whole is not
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                try:
                    for _ in range(100):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    pass
                return
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/cat.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = {"/cat.jpg": CAT.read_bytes(), "/slow": b"late", "/big": b"x" * 1_000_000}.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.requests = requests  # type: ignore[attr-defined]
    server.port = server.server_address[1]  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def _refused(url: str, policy: InputPolicy = OPEN, **kw) -> InputNotAllowedError:
    with pytest.raises(InputNotAllowedError) as e:
        fetch_url(url, policy=policy, **kw)
    assert e.value.code == "url_not_allowed" and e.value.status == 422
    return e.value


def test_loopback_in_every_spelling_is_refused_and_never_contacted(target):
    p = target.port
    spellings = [
        f"http://127.0.0.1:{p}/cat.jpg", f"HTTP://127.0.0.1:{p}/cat.jpg", f"http://127.0.0.1.:{p}/cat.jpg",
        f"http://localhost:{p}/cat.jpg", f"http://LocalHost:{p}/cat.jpg",
        f"http://2130706433:{p}/cat.jpg",  # decimal
        f"http://017700000001:{p}/cat.jpg", f"http://0177.0.0.1:{p}/cat.jpg",  # octal
        f"http://0x7f000001:{p}/cat.jpg", f"http://0x7f.0.0.1:{p}/cat.jpg",  # hex
        f"http://127.1:{p}/cat.jpg", f"http://127.0.1:{p}/cat.jpg",  # short forms
        f"http://[::1]:{p}/cat.jpg", f"http://[::ffff:127.0.0.1]:{p}/cat.jpg", f"http://[::ffff:7f00:1]:{p}/cat.jpg",
        f"http://0.0.0.0:{p}/cat.jpg", f"http://[::]:{p}/cat.jpg", f"http://0:{p}/cat.jpg",
        f"https://127.0.0.1:{p}/cat.jpg",
    ]
    for url in spellings:
        _refused(url)
    # the same through the library's front door, with URLs switched on the way a server is
    with pytest.raises(InputNotAllowedError):
        load_images(f"http://2130706433:{p}/cat.jpg", policy=REMOTE, allow_urls=True)
    assert target.requests == []


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.169.254",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::1", "2001:db8::1",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe", "not an address",
    "::ffff:8.8.8.8",  # IPv4-mapped is refused outright: no resolver answers it for a public host
])
def test_non_public_addresses_refused(address):
    assert not address_allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_allowed(address):
    assert address_allowed(address)


def test_allow_listed_hosts_may_be_private_but_never_link_local_or_unspecified():
    assert address_allowed("127.0.0.1", private_ok=True) and address_allowed("10.1.2.3", private_ok=True)
    for address in ("169.254.169.254", "0.0.0.0", "::", "224.0.0.1", "fe80::1", "::ffff:169.254.169.254"):
        assert not address_allowed(address, private_ok=True), address


def test_allow_listed_host_is_fetched_and_redirects_are_not_followed(target):
    p = target.port
    assert fetch_url(f"http://127.0.0.1:{p}/cat.jpg", policy=LOCAL) == CAT.read_bytes()
    assert load_images(f"http://127.0.0.1:{p}/cat.jpg", policy=LOCAL)[0].size == (32, 32)
    _refused(f"http://127.0.0.1:{p}/redirect", LOCAL)
    assert target.requests == ["/cat.jpg", "/cat.jpg", "/redirect"]  # the Location was never followed


def test_host_allow_list_refuses_other_hosts_unasked(target, monkeypatch):
    p = target.port
    _refused(f"http://127.0.0.1:{p}/cat.jpg", InputPolicy(False, True, ("images.example.com",)))
    _refused(f"http://2130706433:{p}/cat.jpg", LOCAL)  # listed by name, not by what it resolves to
    monkeypatch.setenv("CLASSER_URL_HOSTS", "images.example.com")
    _refused(f"http://127.0.0.1:{p}/cat.jpg")
    assert target.requests == []
    monkeypatch.setenv("CLASSER_URL_HOSTS", "127.0.0.1")
    assert fetch_url(f"http://127.0.0.1:{p}/cat.jpg", policy=OPEN)
    assert target.requests == ["/cat.jpg"]
    assert _host_listed("a.cdn.example.com", (".cdn.example.com",)) and _host_listed("cdn.example.com", (".cdn.example.com",))
    assert not _host_listed("evilcdn.example.com", (".cdn.example.com",))
    assert not _host_listed("images.example.com.evil.net", ("images.example.com",))


def test_every_failure_reads_the_same(target):
    p = target.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    errors = [
        _refused(f"http://127.0.0.1:{closed}/x.png", LOCAL),  # closed port
        _refused(f"http://127.0.0.1:{p}/missing", LOCAL),  # 404
        _refused(f"http://127.0.0.1:{p}/redirect", LOCAL),  # 302
        _refused(f"http://127.0.0.1:{p}/slow", LOCAL, timeout=0.5),  # too slow
        _refused(f"http://127.0.0.1:{p}/big", LOCAL, max_bytes=1000),  # too large
        _refused(f"http://127.0.0.1:{p}/cat.jpg"),  # refused address
        _refused(f"http://user:pw@127.0.0.1:{p}/cat.jpg", LOCAL),  # credentials
        _refused(f"ftp://127.0.0.1:{p}/cat.jpg", LOCAL),  # scheme
        _refused("http://no-such-host.invalid/cat.jpg"),  # unresolvable
    ]
    assert len({e.message for e in errors}) == 1
    assert all(set(e.details) == {"url"} for e in errors)
    assert "/slow" in target.requests and "/cat.jpg" not in target.requests


def test_timeout_bounds_the_whole_fetch(target):
    for path in ("/slow", "/drip"):
        t0 = time.monotonic()
        _refused(f"http://127.0.0.1:{target.port}{path}", LOCAL, timeout=0.5)
        assert time.monotonic() - t0 < 1.5, path


def test_no_second_lookup_so_dns_rebinding_cannot_swap_the_address(target, monkeypatch):
    """The name is resolved once and the checked address is the one connected to: a resolver that
    answers a public address first and loopback second (rebinding) never gets us to loopback."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            lookups.append(host)
            address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    _refused(f"http://rebind.example:{target.port}/cat.jpg", timeout=1.0)  # no network here: the public address fails
    assert lookups == ["rebind.example"] and target.requests == []


def test_urls_stay_off_unless_allowed(target, monkeypatch):
    monkeypatch.delenv("CLASSER_ALLOW_URLS", raising=False)
    with pytest.raises(InvalidRequestError) as e:
        fetch_url(f"http://127.0.0.1:{target.port}/cat.jpg", policy=REMOTE)
    assert e.value.code == "url_fetch_disabled"
    assert target.requests == []
