"""The HTTP app in-process (``fastapi.testclient.TestClient``): the layout, the status table, auth,
ownership and budgets, without starting a server process. ``test_server.py`` and
``test_server_security.py`` run the same API against a real ``classer-local serve``.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from classer_local import errors  # noqa: E402
from classer_local.language import LANGUAGES  # noqa: E402
from classer_local.options import PRIORITIES, TRUNCATES  # noqa: E402
from classer_local.server import errors as server_errors  # noqa: E402
from classer_local.server.app import ServerConfig, create_app  # noqa: E402
from classer_local.server.keys import KeyStore  # noqa: E402
from classer_local.server.routes import ROUTERS  # noqa: E402

LABELS = ["billing", "technical", "sales"]
FAST = {"priority": "fast"}


def _assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code", "message", "details", "docs_url"} and body["code"] == code, body
    return body


@pytest.fixture()
def keys_path(tmp_path: Path) -> str:
    return str(tmp_path / "keys.sqlite3")


def _keys(keys_path: str) -> dict[str, str]:
    store = KeyStore(keys_path)
    try:
        return {
            "admin": store.create("admin", admin=True)[0],
            "a": store.create("a")[0],
            "b": store.create("b")[0],
        }
    finally:
        store.close()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def app_client(keys_path: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    keys = _keys(keys_path)
    app = create_app(ServerConfig(keys_path=keys_path, preload=(), auth_failures_per_min=3))
    with TestClient(app) as c:
        yield c, keys


# ---------------------------------------------------------------------- layout and tables
def test_routes_live_in_routers_not_in_the_factory() -> None:
    app = create_app(ServerConfig(auth=False, preload=()))
    modules = {r.endpoint.__module__ for router in ROUTERS for r in router.routes}
    assert modules == {f"classer_local.server.routes.{m}" for m in
                       ("classify", "jobs", "classifiers", "keys", "usage", "meta")}
    paths = set(app.openapi()["paths"])
    assert {"/v1/classify", "/v1/batch/{job_id}/results", "/v1/classifiers/{name}", "/health"} <= paths


def test_every_error_kind_has_one_status() -> None:
    kinds = {getattr(errors, n).error for n in errors.__all__ if hasattr(getattr(errors, n), "error")}
    assert kinds <= set(server_errors.STATUS), kinds - set(server_errors.STATUS)
    assert server_errors.status_for(errors.PermissionDeniedError("forbidden", "no")) == 403
    assert server_errors.status_for(errors.ServerError("request_timeout", "slow")) == 504
    assert server_errors.status_for(errors.InputNotAllowedError("path_not_allowed", "no")) == 422
    assert server_errors.status_for(errors.InvalidRequestError("request_too_large", "big")) == 413


def test_option_literals_come_from_the_enums() -> None:
    schema = create_app(ServerConfig(auth=False, preload=())).openapi()["components"]["schemas"]
    props = schema["ClassifyRequest"]["properties"]
    assert set(props["priority"]["anyOf"][0]["enum"]) == set(PRIORITIES)
    assert set(props["truncate"]["anyOf"][0]["enum"]) == set(TRUNCATES)
    for request in ("ClassifyRequest", "TagRequest", "BatchRequest", "TagBatchRequest"):
        assert schema[request]["properties"]["language"]["anyOf"][0]["enum"] == list(LANGUAGES), request
    assert "visual_model" in schema["ClassifyResponse"]["properties"]
    assert "visual_model" in schema["TagResponse"]["properties"]


def test_health_is_ready_only_after_preload(keys_path: str) -> None:
    app = create_app(ServerConfig(keys_path=keys_path, preload=("fast", "image")))
    before = TestClient(app).get("/health")  # no lifespan yet: nothing loaded
    assert before.status_code == 503 and before.json()["ready"] is False
    with TestClient(app) as c:
        r = c.get("/health")
        assert r.status_code == 200 and r.json()["ready"] is True
        assert r.json()["preloaded"] == ["fast", "image"]


def test_405_carries_allow() -> None:
    with TestClient(create_app(ServerConfig(auth=False, preload=()))) as c:
        r = c.get("/v1/classify")
        _assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == "POST"
        r = c.put("/v1/classifiers/x")
        assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "DELETE"}


# ---------------------------------------------------------------------- auth
def test_keys_database_is_private(keys_path: str) -> None:
    KeyStore(keys_path).close()
    for suffix in ("", "-wal", "-shm"):
        p = Path(keys_path + suffix)
        if p.exists():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))


def test_failed_auth_is_throttled_per_address(app_client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = app_client
    wrong = _h("clk_000000000000_" + "x" * 43)
    for _ in range(3):
        _assert_error(c.get("/v1/balance", headers=wrong), 401, "invalid_api_key")
    r = c.get("/v1/balance", headers=wrong)
    body = _assert_error(r, 429, "too_many_auth_failures")
    assert 1 <= int(r.headers["Retry-After"]) <= 60 and body["details"]["limit"] == 3
    # Refused before the key is looked at: a right key from that address waits too.
    _assert_error(c.get("/v1/balance", headers=_h(keys["admin"])), 429, "too_many_auth_failures")


def test_non_admin_on_admin_route_is_forbidden(app_client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = app_client
    _assert_error(c.post("/v1/keys", json={"name": "x"}, headers=_h(keys["a"])), 403, "forbidden")
    assert c.post("/v1/keys", json={"name": "x"}, headers=_h(keys["admin"])).status_code == 201


# ---------------------------------------------------------------------- scoring
def test_headers_cache_namespace_and_front_door(app_client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = app_client
    body = {"text": f"refund my order {uuid.uuid4().hex}", "labels": LABELS, **FAST}
    a1 = c.post("/v1/classify", json=body, headers=_h(keys["a"]))
    assert a1.status_code == 200, a1.text
    for name in ("X-RateLimit-Limit-Requests", "X-RateLimit-Remaining-Requests", "X-RateLimit-Limit-Tokens",
                 "X-RateLimit-Remaining-Tokens", "X-RateLimit-Reset"):
        assert int(a1.headers[name]) >= 0, name
    assert a1.headers["X-RateLimit-Limit-Requests"] == "600"  # the server's default, set for keys without one
    assert a1.headers["X-RateLimit-Limit-Tokens"] == "1000000"
    assert a1.json()["visual_model"] is None
    b1 = c.post("/v1/classify", json=body, headers=_h(keys["b"]))
    assert b1.headers["X-Cache"] == "MISS" and b1.headers["X-Cache-Age"] == "0"
    assert b1.headers["X-Cache-Key"] != a1.headers["X-Cache-Key"]
    a2 = c.post("/v1/classify", json=body, headers=_h(keys["a"]))
    assert a2.headers["X-Cache"] == "HIT" and a2.headers["X-Cache-Key"] == a1.headers["X-Cache-Key"]
    # One usage row per request, carrying the caller's key (passed, not read from a context variable).
    rows = c.get("/v1/logs", params={"request_id": b1.headers["X-Request-ID"]}, headers=_h(keys["b"])).json()
    assert [r["key_id"] for r in rows["logs"]] == [keys["b"].split("_")[1]]


def test_request_timeout_is_typed(keys_path: str) -> None:
    app = create_app(ServerConfig(auth=False, preload=(), request_timeout_s=0.01))
    texts = [f"a rather long sentence about refunds and invoices number {i}" * 8 for i in range(400)]
    with TestClient(app) as c:
        r = c.post("/v1/classify/batch", json={"texts": texts, "labels": LABELS, "cache": False})
        body = _assert_error(r, 504, "request_timeout")
        assert body["details"]["timeout_s"] == 0.01


def test_classifier_ownership(app_client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = app_client
    name = f"own-{uuid.uuid4().hex[:8]}"
    spec = {"name": name, "labels": ["billing", "technical"], "priority": "fast"}
    made = c.post("/v1/classifiers", json=spec, headers=_h(keys["a"]))
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == keys["a"].split("_")[1] and made.json()["shared"] is False
    _assert_error(c.get(f"/v1/classifiers/{name}", headers=_h(keys["b"])), 404, "classifier_not_found")
    _assert_error(c.delete(f"/v1/classifiers/{name}", headers=_h(keys["b"])), 404, "classifier_not_found")
    _assert_error(c.post("/v1/classify", json={"text": "x", "classifier": name}, headers=_h(keys["b"])),
                  404, "classifier_not_found")
    _assert_error(c.post("/v1/classifiers", json=spec, headers=_h(keys["b"])), 409, "classifier_name_taken")
    def names(key: str) -> set[str]:
        return {x["name"] for x in c.get("/v1/classifiers", headers=_h(keys[key])).json()["classifiers"]}

    assert name not in names("b") and name in names("admin")
    assert c.get(f"/v1/classifiers/{name}", headers=_h(keys["a"])).status_code == 200
    assert c.delete(f"/v1/classifiers/{name}", headers=_h(keys["a"])).status_code == 200


def test_urls_allowed_hosts_are_fetched_but_redirects_never_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 row 3, the redirect case: it needs a host on the allow-list, so it runs in-process."""
    import io
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buf, format="PNG")
    png, hits = buf.getvalue(), []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/x.png")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    monkeypatch.setenv("CLASSER_ALLOW_URLS", "1")
    monkeypatch.setenv("CLASSER_URL_HOSTS", "localhost")
    try:
        with TestClient(create_app(ServerConfig(auth=False, preload=()))) as c:
            url = f"http://localhost:{port}/x.png"
            ok = c.post("/v1/classify", json={"image": url, "labels": LABELS, **FAST})
            assert ok.status_code == 200 and ok.json()["visual_tokens"] > 0, ok.text
            for url in (f"http://localhost:{port}/redirect", f"http://127.0.0.1:{port}/x.png"):
                r = c.post("/v1/classify", json={"image": url, "labels": LABELS, **FAST})
                _assert_error(r, 422, "url_not_allowed")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert hits == ["/x.png", "/redirect"]  # the redirect's target was never asked for


def test_rate_limit_headers_and_auth_throttle_units() -> None:
    from classer_local.server.ratelimit import MAX_ADDRESSES, UNLIMITED, AuthThrottle, RateLimiter

    rl = RateLimiter()
    d = rl.check("k", rpm=2, tpm=100, now=0.0)
    rl.record("k", 30, now=0.0)
    assert d.headers() == {
        "X-RateLimit-Limit-Requests": "2", "X-RateLimit-Remaining-Requests": "1",
        "X-RateLimit-Limit-Tokens": "100", "X-RateLimit-Remaining-Tokens": "100", "X-RateLimit-Reset": "60",
    }
    d = rl.check("k", rpm=0, tpm=0, now=1.0, enforce_tokens=False)
    h = d.headers()
    assert h["X-RateLimit-Limit-Requests"] == h["X-RateLimit-Remaining-Tokens"] == str(UNLIMITED)
    assert rl.check("k", rpm=0, tpm=30, now=2.0).reason == "tokens"
    assert rl.check("k", rpm=0, tpm=30, now=2.0, enforce_tokens=False).allowed

    t = AuthThrottle(limit=2)
    t.fail("a", now=0.0)
    assert t.blocked("a", now=1.0) == 0.0
    t.fail("a", now=1.0)
    assert t.blocked("a", now=2.0) == pytest.approx(58.0) and t.blocked("b", now=2.0) == 0.0
    assert t.blocked("a", now=61.0) == 0.0  # the window aged out
    for i in range(MAX_ADDRESSES):
        t.fail(f"10.{i}", now=100.0)
    t.fail("late", now=200.0)  # everything quiet for a minute is swept
    assert len(t._fails) == 1
    assert AuthThrottle(limit=0).blocked("x") == 0.0  # 0 turns it off


def test_store_records_owner_and_loads_untrusted() -> None:
    from classer_local import store
    from classer_local.inputs import REMOTE, TRUSTED

    name = f"owned-{uuid.uuid4().hex[:8]}"
    info = store.create(name, ["billing", "technical"], priority="fast", owner="abc123", shared=True,
                        allow_paths=False)
    assert (info["owner"], info["shared"]) == ("abc123", True)
    assert store.get(name)["owner"] == "abc123" and store.list(name)[0]["shared"] is True
    assert store.load(name, allow_paths=False).policy_ == REMOTE
    assert store.load(name).policy_ == TRUSTED  # a separate load: each keeps its own policy
    with pytest.raises(errors.InvalidRequestError):
        store.create(name, ["a", "b"], priority="fast", owner="")
    store.delete(name)
