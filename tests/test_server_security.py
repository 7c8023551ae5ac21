"""Issue 11's attacks, each against a real server process with real keys (loopback only).

One server for the module, started with ``CLASSER_ALLOW_URLS=1`` (so the SSRF rows are
tried with URL fetching on), a small auth-failure limit, and the fast model preloaded. A
local ``http.server`` is the SSRF target; it counts what reaches it. The brute-force row
comes from 127.0.0.2 so the throttle it trips does not refuse the other tests (127.0.0.1).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from serverproc import ServerProcess, free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
Image = pytest.importorskip("PIL.Image")

LABELS = ["billing", "technical"]
FAST = {"priority": "fast"}
AUTH_FAILURES = 20
RATE_HEADERS = (
    "X-RateLimit-Limit-Requests",
    "X-RateLimit-Remaining-Requests",
    "X-RateLimit-Limit-Tokens",
    "X-RateLimit-Remaining-Tokens",
    "X-RateLimit-Reset",
)


def _png(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 32), mode: str = "RGB"
) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Server(ServerProcess):
    """``serve(ServerConfig(...))`` in its own process; ``HOME`` and ``CLASSER_HOME`` are a temp folder."""

    def __init__(self, home: Path, config: dict[str, Any], env: dict[str, str]) -> None:
        code = (
            "import json, sys\n"
            "from classer_local.server.app import ServerConfig, serve\n"
            "cfg = json.loads(sys.argv[2])\n"
            "serve('127.0.0.1', int(sys.argv[1]), ServerConfig(**cfg), log_level='warning')\n"
        )
        port = free_port()
        super().__init__(home, ["-c", code, str(port), json.dumps(config)], env={"HOME": str(home), **env},
                         ready_s=120, port=port)

    def client(self, key: str, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=120, **kw)


class Target:
    """The SSRF target: a loopback ``http.server`` serving a PNG, counting every request it gets."""

    def __init__(self) -> None:
        png = _png()
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = hits
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    home = Path(tempfile.mkdtemp(prefix="classer-security-test-"))
    srv = Server(
        home,
        {"rpm": 0, "auth_failures_per_min": AUTH_FAILURES, "preload": ["fast"]},
        {"CLASSER_ALLOW_URLS": "1", "CLASSER_URL_HOSTS": ""},
    )
    try:
        yield srv
        out = srv.output()
        assert "Traceback" not in out, out
    finally:
        srv.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, str]:
    return {"admin": server.new_key("admin", "--admin"), "a": server.new_key("a"), "b": server.new_key("b")}


def _key_id(key: str) -> str:
    return key.split("_")[1]


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "code", "message", "details", "docs_url"} and body["code"] == code, body
    assert "Traceback" not in r.text
    return body


def _upload(c: httpx.Client, rows: list[bytes], **params: Any) -> Any:
    return c.post(
        "/v1/batch", params={"labels": "a,b", "priority": "fast", **params},
        content=b"\n".join(rows) + b"\n", headers={"content-type": "application/x-ndjson"},
    )


def _wait(c: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job = c.get(f"/v1/batch/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


# ---------------------------------------------------------------------- row 1: examples naming server files
def test_row1_examples_are_never_server_files(server: Server, keys: dict[str, str]) -> None:
    bad = server.home / "x.png"
    bad.write_bytes(b"not an image at all")  # opened, it would answer 422 image_unreadable
    (server.home / ".bashrc").write_bytes(b"\x89PNG garbage")
    examples = {"billing": [f"{bad} "], "technical": ["~/.bashrc", "/etc/passwd"]}
    body = {"image": _b64(_png()), "labels": LABELS, "examples": examples, "cache": False, **FAST}
    with server.client(keys["a"]) as c:
        first = c.post("/v1/classify", json=body)
        assert first.status_code == 200, first.text
        bad.write_bytes(_png((0, 0, 255)))  # a real image now: were it read, the scores would move
        assert c.post("/v1/classify", json=body).json()["scores"] == first.json()["scores"]
        bad.unlink()
        assert c.post("/v1/classify", json=body).json()["scores"] == first.json()["scores"]
        spec = {"name": "row1", "labels": LABELS, "examples": examples, **FAST}
        saved = c.post("/v1/classifiers", json=spec)
        assert saved.status_code == 201, saved.text
        # Inputs are never paths either.
        for spelling in ("/etc/passwd", " ~/.bashrc", "file:///etc/passwd", "../x.png", f"{server.home}/x.png",
                         f"  {server.home}/x.png\n"):
            for field in ("image", "file"):
                r = c.post("/v1/classify", json={field: spelling, "labels": LABELS, **FAST})
                _error(r, 422, "path_not_allowed")


# ---------------------------------------------------------------------- row 2: job rows naming server files
def test_row2_job_rows_never_name_server_files(server: Server, keys: dict[str, str]) -> None:
    target = server.home / "row2.png"
    target.write_bytes(_png())
    rows = [
        b'{"\\u0069mage": "' + str(target).encode() + b'"}',
        b'{"file": "/etc/passwd "}',
        b'{"image": "~/.bashrc"}',
        b'{"image": ["' + _b64(_png()).encode() + b'", "file://' + str(target).encode() + b'"]}',
    ]
    with server.client(keys["a"]) as c:
        for i, row in enumerate(rows):
            good = json.dumps({"id": "ok", "text": "fine"}).encode()
            body = _error(_upload(c, [good, row]), 422, "path_not_allowed")
            assert body["details"]["row"] == 1, (i, body)
        assert c.get("/v1/batch").json()["jobs"] == []  # nothing was made


# ---------------------------------------------------------------------- row 3: SSRF
def test_row3_urls_to_internal_addresses_are_refused_alike(server: Server, keys: dict[str, str]) -> None:
    target = Target()
    closed = free_port()
    try:
        urls = [
            f"http://127.0.0.1:{target.port}/x.png",
            f"http://2130706433:{target.port}/x.png",  # 127.0.0.1 in decimal
            f"http://0177.0.0.1:{target.port}/x.png",  # and in octal
            f"http://localhost:{target.port}/x.png",
            f"http://[::1]:{target.port}/x.png",
            f"http://[::ffff:127.0.0.1]:{target.port}/x.png",
            f"http://127.0.0.1:{closed}/x.png",  # a closed port answers exactly as an open one
        ]
        messages = set()
        with server.client(keys["a"]) as c:
            for url in urls:
                body = _error(c.post("/v1/classify", json={"image": url, "labels": LABELS, **FAST}), 422,
                              "url_not_allowed")
                messages.add(body["message"])
            ftp = {"image": f"ftp://127.0.0.1:{target.port}/x.png", "labels": LABELS, **FAST}
            _error(c.post("/v1/classify", json=ftp), 422, "path_not_allowed")  # not a URL it fetches
        assert len(messages) == 1, messages
        assert target.hits == []
    finally:
        target.stop()


# ---------------------------------------------------------------------- row 4: ownership
def test_row4_jobs_and_classifiers_belong_to_their_key(server: Server, keys: dict[str, str]) -> None:
    rows = [json.dumps({"id": i, "text": t}).encode() for i, t in enumerate(["refund", "crash"])]
    with server.client(keys["a"]) as a, server.client(keys["b"]) as b, server.client(keys["admin"]) as admin:
        job = _upload(a, rows).json()
        assert job["owner"] == _key_id(keys["a"])
        spec = {"name": "row4", "labels": LABELS, **FAST}
        assert a.post("/v1/classifiers", json=spec).status_code == 201
        shared = {"name": "row4-shared", "labels": LABELS, "shared": True, **FAST}
        assert a.post("/v1/classifiers", json=shared).status_code == 201

        jid = job["id"]
        _error(b.get(f"/v1/batch/{jid}"), 404, "job_not_found")
        _error(b.get(f"/v1/batch/{jid}/results"), 404, "job_not_found")
        _error(b.post(f"/v1/batch/{jid}/start"), 404, "job_not_found")
        _error(b.delete(f"/v1/batch/{jid}"), 404, "job_not_found")
        assert jid not in {j["id"] for j in b.get("/v1/batch").json()["jobs"]}
        _error(b.get("/v1/classifiers/row4"), 404, "classifier_not_found")
        _error(b.delete("/v1/classifiers/row4"), 404, "classifier_not_found")
        r = b.post("/v1/classify", json={"text": "refund", "classifier": "row4"})
        _error(r, 404, "classifier_not_found")
        _error(_upload(b, rows, labels="", classifier="row4"), 404, "classifier_not_found")
        assert "row4" not in {x["name"] for x in b.get("/v1/classifiers").json()["classifiers"]}
        # Shared: every key reads it and scores with it; only its owner (or an admin) deletes it.
        assert b.get("/v1/classifiers/row4-shared").json()["shared"] is True
        assert b.post("/v1/classify", json={"text": "refund", "classifier": "row4-shared"}).status_code == 200
        _error(b.delete("/v1/classifiers/row4-shared"), 403, "forbidden")
        # Nothing of A's was touched; the admin sees everything.
        assert a.get(f"/v1/batch/{jid}").json()["status"] == "created"
        assert jid in {j["id"] for j in admin.get("/v1/batch").json()["jobs"]}
        assert admin.get("/v1/classifiers/row4").status_code == 200
        assert a.post(f"/v1/batch/{jid}/start").status_code == 200
        assert _wait(a, jid)["status"] == "completed"
        assert len(a.get(f"/v1/batch/{jid}/results").text.splitlines()) == 2
        assert a.delete(f"/v1/batch/{jid}").status_code == 200
        assert admin.delete("/v1/classifiers/row4").status_code == 200


# ---------------------------------------------------------------------- row 5: bounded work
def _docx(paragraphs: int) -> bytes:
    docx = pytest.importorskip("docx")
    doc = docx.Document()
    for i in range(paragraphs):
        doc.add_paragraph(str(i % 10))
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def test_row5_huge_documents_and_images_are_refused_fast(server: Server, keys: dict[str, str]) -> None:
    docx = _docx(20_000)
    big = _png(size=(8000, 8000), mode="1")  # 64 MP declared, a few KB on the wire
    with server.client(keys["a"]) as c:
        t0 = time.perf_counter()
        _error(c.post("/v1/classify", json={"file": _b64(docx), "labels": LABELS, **FAST}), 400,
               "file_too_many_blocks")
        docx_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _error(c.post("/v1/classify/batch", json={"images": [_b64(big)] * 11, "labels": LABELS, **FAST}), 400,
               "pixel_budget_exceeded")
        _error(c.post("/v1/classify", json={"image": [_b64(big)] * 11, "labels": LABELS, **FAST}), 400,
               "pixel_budget_exceeded")
        images_s = (time.perf_counter() - t0) / 2
        # Refused before the model thread: a text request right after is answered at once.
        assert c.post("/v1/classify", json={"text": "refund", "labels": LABELS, **FAST}).status_code == 200
    print(f"\nrow 5: docx of {len(docx):,} bytes refused in {docx_s:.2f} s; 11 PNGs in {images_s:.2f} s")
    assert docx_s < 5 and images_s < 5  # 19.6 s and 10.7 s before; < 1 s on a quiet machine


# ---------------------------------------------------------------------- row 6: lines that cannot be read
def test_row6_one_bad_line_never_fails_the_job(server: Server, keys: dict[str, str]) -> None:
    rows = [
        b'{"id": "surrogate", "text": "\\ud800 alone"}',
        b'{"id": ' + b"9" * 5000 + b', "text": "long id"}',
        b'{"id": "fine", "text": "refund please"}',
    ]
    with server.client(keys["a"]) as c:
        job = _upload(c, rows, start="true").json()
        done = _wait(c, job["id"])
        assert done["status"] == "completed", done
        out = [json.loads(line) for line in c.get(f"/v1/batch/{job['id']}/results").text.splitlines()]
    assert len(out) == 3 and done["failed"] == 2
    assert out[0]["id"] == "surrogate" and "error" in out[0]
    assert out[1]["id"] == 1 and "error" in out[1]  # the id is unusable: its row number stands in
    assert out[2]["id"] == "fine" and out[2]["label"] in ("a", "b")


# ---------------------------------------------------------------------- row 7: the cache across keys
def test_row7_cache_hits_are_never_disclosed_across_keys(server: Server, keys: dict[str, str]) -> None:
    body = {"text": "a private question only key A asked", "labels": LABELS, **FAST}
    with server.client(keys["a"]) as a, server.client(keys["b"]) as b:
        first = a.post("/v1/classify", json=body)
        assert first.headers["X-Cache"] == "MISS"
        again = b.post("/v1/classify", json=body)
        assert again.headers["X-Cache"] == "MISS" and again.headers["X-Cache-Age"] == "0"
        assert again.json()["cached"] is False and again.json()["tokens"] > 0
        assert again.headers["X-Cache-Key"] != first.headers["X-Cache-Key"]
        batch = b.post("/v1/classify/batch", json={"texts": [body["text"]], "labels": LABELS, **FAST})
        assert batch.headers["X-Cache"] == "HIT" and batch.json()["cached_count"] == 1  # B's own, not A's
        assert a.post("/v1/classify", json=body).headers["X-Cache"] == "HIT"


# ---------------------------------------------------------------------- row 8: brute force
def test_row8_failed_auth_is_throttled_per_address(server: Server, keys: dict[str, str]) -> None:
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    codes: dict[int, int] = {}
    with httpx.Client(base_url=server.url, transport=other, timeout=30) as c:
        for i in range(1200):
            r = c.get("/v1/balance", headers={"Authorization": f"Bearer clk_{i:012x}_{'x' * 43}"})
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
        assert codes == {401: AUTH_FAILURES, 429: 1200 - AUTH_FAILURES}, codes
        r = c.get("/v1/balance", headers={"Authorization": f"Bearer {keys['a']}"})
        _error(r, 429, "too_many_auth_failures")  # a right key waits too: guesses teach nothing
        assert 1 <= int(r.headers["Retry-After"]) <= 60
    with server.client(keys["a"]) as c:  # other addresses are not affected
        assert c.get("/v1/balance").status_code == 200


# ---------------------------------------------------------------------- auth, headers, files
def test_admin_routes_refuse_other_keys_and_the_key_file_is_private(
    server: Server, keys: dict[str, str]
) -> None:
    with server.client(keys["b"]) as c:
        _error(c.post("/v1/keys", json={"name": "escalate", "admin": True}), 403, "forbidden")
    mode = stat.S_IMODE((server.home / "keys.sqlite3").stat().st_mode)
    assert mode == 0o600, oct(mode)


def test_every_classification_response_carries_the_rate_limit_headers(
    server: Server, keys: dict[str, str]
) -> None:
    examples = [{"text": t, "label": lb} for t, lb in
                [("refund me", "billing"), ("charged twice", "billing"), ("app crashes", "technical"),
                 ("cannot log in", "technical")]]
    calls = [
        ("/v1/classify", {"text": "refund please", "labels": LABELS, **FAST}),
        ("/v1/tag", {"text": "refund please", "labels": LABELS, **FAST}),
        ("/v1/classify/batch", {"texts": ["refund please"], "labels": LABELS, **FAST}),
        ("/v1/tag/batch", {"texts": ["refund please"], "labels": LABELS, **FAST}),
        ("/cohere/v1/classify", {"inputs": ["refund please"], "examples": examples, **FAST}),
    ]
    with server.client(keys["b"]) as c:
        for path, body in calls:
            r = c.post(path, json=body)
            assert r.status_code == 200, (path, r.text)
            for name in RATE_HEADERS:
                assert int(r.headers[name]) >= 0, (path, name)
            assert r.headers["X-RateLimit-Limit-Tokens"] == "1000000"  # the server's default for keys
        r = c.post("/v1/classify", json={"text": "x", "labels": ["a"], "priority": "slow"})
        assert all(name in r.headers for name in RATE_HEADERS)  # errors too
    r = httpx.get(server.url + "/v1/classify")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_the_port_opens_only_once_the_preloaded_models_are_warm(server: Server) -> None:
    health = httpx.get(server.url + "/health").json()
    assert health["ready"] is True and health["preloaded"] == ["fast"]
