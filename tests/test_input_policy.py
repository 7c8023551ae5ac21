"""One input policy: under REMOTE no string is ever a path on this machine, whatever its spelling,
and the answer never tells whether a file exists; under TRUSTED local paths keep working."""

from __future__ import annotations

import base64
import io
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from classer_local.errors import InputNotAllowedError, InvalidRequestError, UnprocessableInputError
from classer_local.inputs import (
    REMOTE,
    TRUSTED,
    InputPolicy,
    load_document,
    load_image,
    load_images,
    looks_like_file,
    read_source,
)

FIXTURES = Path(__file__).parent / "fixtures"
CAT = FIXTURES / "cifar_cat.jpg"
PDF = FIXTURES / "memo.pdf"


@pytest.fixture()
def secret(tmp_path, monkeypatch):
    """An existing image file under a fake HOME, so ``~`` spellings name it."""
    home = tmp_path / "home"
    home.mkdir()
    path = home / "secret.png"
    Image.new("RGB", (9, 7), (1, 2, 3)).save(path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    return path


class _Watch:
    """Every path the process stats or opens while active (os.stat/lstat wrappers + the 'open' audit event)."""

    active = False
    seen: list[str] = []

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if cls.active and event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, Path)):
            cls.seen.append(str(args[0]))


sys.addaudithook(_Watch.hook)


@pytest.fixture()
def watch(monkeypatch):
    real_stat, real_lstat = os.stat, os.lstat

    def stat(p, *a, **k):
        if _Watch.active:
            _Watch.seen.append(os.fsdecode(p) if not isinstance(p, int) else str(p))
        return real_stat(p, *a, **k)

    def lstat(p, *a, **k):
        if _Watch.active:
            _Watch.seen.append(os.fsdecode(p))
        return real_lstat(p, *a, **k)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    _Watch.seen = []
    _Watch.active = True
    yield _Watch
    _Watch.active = False


def _spellings(secret: Path) -> list[object]:
    s = str(secret)
    return [
        s, s + " ", " " + s, s + "\n", "\t" + s + "  ",
        "~/secret.png", " ~/secret.png", "~",
        "file://" + s, "FILE://" + s, "file:" + s, "file://localhost" + s,
        "./secret.png", "secret.png", "../home/secret.png", "/../" + s,
        s.replace("secret", "missing"), "/etc/passwd", "/etc/shadow", "~/.bashrc", "/",
        "C:\\Windows\\win.ini", "\\\\server\\share\\x.png",
        "not base64 at all!",
    ]


def test_remote_refuses_every_path_spelling_without_touching_the_disk(secret, watch):
    answers = set()
    for value in _spellings(secret):
        for load in (lambda v: read_source(v, policy=REMOTE), lambda v: load_images(v, policy=REMOTE),
                     lambda v: load_image(v, policy=REMOTE)):
            with pytest.raises(InputNotAllowedError) as e:
                load(value)
            assert e.value.code == "path_not_allowed" and e.value.status == 422, value
            assert isinstance(e.value, UnprocessableInputError)
            answers.add((e.value.message, tuple(sorted(e.value.details.items()))))
        with pytest.raises(InputNotAllowedError) as e:
            load_document(value, policy=REMOTE)
        assert e.value.code == "path_not_allowed", value
    # the same answer for an existing file and a missing one: nothing to learn from it
    assert len(answers) == 1
    assert "secret" not in next(iter(answers))[0]
    touched = [p for p in watch.seen if "secret" in p or "missing" in p or "passwd" in p or "bashrc" in p]
    assert touched == [], touched


def test_empty_strings_are_invalid_not_paths():
    for policy in (REMOTE, TRUSTED):
        for value in ("", "   \n"):
            with pytest.raises(InvalidRequestError) as e:
                load_images(value, policy=policy)
            assert e.value.code == "image_invalid"


def test_trusted_path_reads_are_capped(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(InvalidRequestError) as e:
        read_source(str(big), policy=TRUSTED, max_bytes=1024)
    assert e.value.code == "file_too_large" and e.value.details["bytes"] == 2048


def test_remote_refuses_path_objects(secret, watch):
    for value in (secret, Path("~/secret.png")):
        with pytest.raises(InputNotAllowedError) as e:
            read_source(value, policy=REMOTE)
        assert e.value.code == "path_not_allowed"
    assert not [p for p in watch.seen if "secret" in p]


def test_remote_still_reads_bytes_base64_data_urls_files_and_images():
    raw = CAT.read_bytes()
    b64 = base64.b64encode(raw).decode()
    assert b64.startswith("/9j/")  # a base64 JPEG begins with "/": it is not taken for a path
    for value in (raw, b64, "  " + b64 + "\n", "data:image/jpeg;base64," + b64, io.BytesIO(raw),
                  base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        assert load_images(value, policy=REMOTE)[0].size == (32, 32)
    im = Image.new("RGB", (5, 5))
    assert read_source(im, policy=REMOTE) is im
    assert read_source("aGVsbG8gd29ybGQ=", policy=REMOTE) == b"hello world"
    pdf = base64.b64encode(PDF.read_bytes()).decode()
    assert load_document(pdf, policy=REMOTE).kind == "pdf"


def test_trusted_reads_local_paths_in_every_spelling(secret):
    s = str(secret)
    for value in (s, secret, " " + s + " ", "~/secret.png", "file://" + s, "file:" + s, "secret.png"):
        assert load_images(value, policy=TRUSTED)[0].size == (9, 7), value
    assert load_images(s)[0].size == (9, 7)  # TRUSTED is the default for in-process callers


@pytest.mark.parametrize("value", ["/no/such/picture.jpg", "/etc/definitely-missing", "~/missing.png",
                                   "file:///no/such.png", "../nowhere.png"])
def test_trusted_missing_file_is_file_not_found(value, secret):
    # "/etc/definitely-missing" is valid base64; it is still reported as the missing path it looks like
    with pytest.raises(InvalidRequestError) as e:
        load_images(value, policy=TRUSTED)
    assert e.value.code == "file_not_found"


def test_looks_like_file(secret, watch):
    s = str(secret)
    jpeg_url = "https://example.com/a/cat.JPG?x=1"
    for policy in (TRUSTED, REMOTE):
        assert looks_like_file("data:image/png;base64,iVBORw0KGgo=", policy)
        assert looks_like_file(jpeg_url, policy)
        assert not looks_like_file("https://example.com/page", policy)  # a text example that is a link
        assert not looks_like_file("data: revenue grew 5% this quarter", policy)
        assert not looks_like_file("The invoice is attached as invoice.pdf", policy)
        assert not looks_like_file("missing.pdf", policy)
        assert looks_like_file(b"\x89PNG", policy) and looks_like_file(Image.new("RGB", (1, 1)), policy)
        assert not looks_like_file(None, policy)
    _Watch.seen.clear()
    for value in (s, " " + s, "~/secret.png", "file://" + s, "secret.png"):
        assert not looks_like_file(value, REMOTE), value
    assert not [p for p in watch.seen if "secret" in p]
    assert looks_like_file(s, TRUSTED) and looks_like_file(" " + s + " ", TRUSTED)
    assert looks_like_file("~/secret.png", TRUSTED) and looks_like_file("file://" + s, TRUSTED)
    notes = secret.parent / "notes"
    notes.write_text("hello")
    assert not looks_like_file(str(notes), TRUSTED)  # an existing file without an image/document suffix


def test_policy_urls_and_hosts_from_env(monkeypatch):
    monkeypatch.delenv("CLASSER_ALLOW_URLS", raising=False)
    monkeypatch.delenv("CLASSER_URL_HOSTS", raising=False)
    assert not REMOTE.urls_allowed() and REMOTE.hosts() == ()
    monkeypatch.setenv("CLASSER_ALLOW_URLS", "1")
    monkeypatch.setenv("CLASSER_URL_HOSTS", " Images.Corp. , .cdn.example.com,")
    assert REMOTE.urls_allowed() and TRUSTED.urls_allowed()
    assert REMOTE.hosts() == ("images.corp", ".cdn.example.com")
    pinned = InputPolicy(allow_paths=False, allow_urls=False, url_hosts=("a.example",))
    assert not pinned.urls_allowed() and pinned.hosts() == ("a.example",)
    assert REMOTE.with_urls(None) is REMOTE and REMOTE.with_urls(False).allow_urls is False


def test_allow_urls_keyword_still_overrides_the_policy(monkeypatch):
    monkeypatch.setenv("CLASSER_ALLOW_URLS", "1")
    with pytest.raises(InvalidRequestError) as e:
        load_images("https://example.invalid/cat.jpg", policy=REMOTE, allow_urls=False)
    assert e.value.code == "url_fetch_disabled"
    with pytest.raises(InvalidRequestError) as e:
        load_document("https://example.invalid/a.pdf", allow_urls=False)
    assert e.value.code == "url_fetch_disabled"
