"""classer_local.inputs: every input form and every limit of load_images / load_document."""

from __future__ import annotations

import base64
import http.server
import io
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from classer_local.errors import InvalidRequestError, UnprocessableInputError
from classer_local.inputs import MAX_IMAGES, MAX_PAGES, MAX_PIXELS, Document, load_document, load_images
from classer_local.inputs.images import MAX_DECODE_PIXELS

FIXTURES = Path(__file__).parent / "fixtures"
CAT = FIXTURES / "cifar_cat.jpg"
PDF = FIXTURES / "memo.pdf"
DOCX = FIXTURES / "handbook.docx"


def png_bytes(size=(8, 6), mode="RGB", color=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def pdf_bytes(pages: int = 1, text: str = "Invoice number 42. Total due: 10 EUR.", **save) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        if text:
            page.insert_text((72, 72), f"{text} (page {i + 1})")
    return doc.tobytes(**save)


# --- images: forms --------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["str", "path", "bytes", "base64", "data_url", "pil", "file", "list"])
def test_image_forms(form):
    raw = CAT.read_bytes()
    value = {
        "str": str(CAT),
        "path": CAT,
        "bytes": raw,
        "base64": base64.b64encode(raw).decode(),
        "data_url": "data:image/jpeg;base64," + base64.b64encode(raw).decode(),
        "pil": Image.open(CAT),
        "file": io.BytesIO(raw),
        "list": [str(CAT), raw],
    }[form]
    images = load_images(value)
    assert len(images) == (2 if form == "list" else 1)
    assert all(im.mode == "RGB" and im.size == (32, 32) for im in images)


def test_urlsafe_base64_and_whitespace():
    raw = png_bytes()
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert load_images("\n".join([text[:20], text[20:]]))[0].size == (8, 6)


def test_missing_path_and_garbage_string():
    with pytest.raises(InvalidRequestError) as e:
        load_images("/no/such/picture.jpg")
    assert e.value.code == "file_not_found"
    with pytest.raises(InvalidRequestError) as e:
        load_images("not an image at all!")
    assert e.value.code == "image_invalid"
    with pytest.raises(InvalidRequestError) as e:
        load_images(12345)
    assert e.value.code == "image_invalid"


def test_rgba_flattened_on_white_and_grey_to_rgb():
    im = load_images(png_bytes(mode="RGBA", color=(0, 0, 0, 0)))[0]
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)
    assert load_images(Image.new("L", (4, 4)))[0].mode == "RGB"


def test_exif_orientation_applied():
    im = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    assert load_images(buf.getvalue())[0].size == (20, 40)


# --- images: limits -------------------------------------------------------------------------


def test_too_many_images():
    one = png_bytes()
    assert len(load_images([one] * MAX_IMAGES)) == MAX_IMAGES
    with pytest.raises(InvalidRequestError) as e:
        load_images([one] * (MAX_IMAGES + 1))
    assert e.value.code == "too_many_images" and e.value.details["limit"] == 20
    with pytest.raises(InvalidRequestError) as e:
        load_images([])
    assert e.value.code == "images_empty"


def test_large_image_resized_keeping_aspect():
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2000), (1, 2, 3)).save(buf, "PNG")
    im = load_images(buf.getvalue())[0]
    w, h = im.size
    assert w * h <= MAX_PIXELS and w * h > 0.99 * MAX_PIXELS
    assert abs(w / h - 1.5) < 0.01


def test_decompression_bomb_refused_unread():
    raw = bytearray(png_bytes((1, 1)))
    # rewrite the IHDR's width/height to 100,000 x 100,000 (and its CRC): a tiny file declaring 10 GP
    ihdr = raw[12:29]
    ihdr[4:12] = struct.pack(">II", 100_000, 100_000)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    with pytest.raises(UnprocessableInputError) as e:
        load_images(bytes(raw))
    assert e.value.code == "decompression_bomb" and e.value.status == 422
    assert e.value.details["limit"] == MAX_DECODE_PIXELS


def test_truncated_and_unreadable_images():
    raw = CAT.read_bytes()
    with pytest.raises(UnprocessableInputError) as e:
        load_images(raw[: len(raw) // 2])
    assert e.value.code == "image_truncated"
    with pytest.raises(UnprocessableInputError) as e:
        load_images(b"\x00\x01 definitely not an image " * 10)
    assert e.value.code == "image_unreadable"
    with pytest.raises(UnprocessableInputError) as e:
        load_images(b"")
    assert e.value.code == "image_empty"


# --- URLs -----------------------------------------------------------------------------------


def test_url_fetch_disabled_by_default(monkeypatch):
    monkeypatch.delenv("CLASSER_ALLOW_URLS", raising=False)
    with pytest.raises(InvalidRequestError) as e:
        load_images("https://example.invalid/cat.jpg")
    assert e.value.code == "url_fetch_disabled"
    with pytest.raises(InvalidRequestError) as e:
        load_document("http://example.invalid/a.pdf")
    assert e.value.code == "url_fetch_disabled"


@pytest.fixture()
def local_server():
    payloads = {"/cat.jpg": CAT.read_bytes(), "/memo.pdf": PDF.read_bytes()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = payloads.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_fetch_when_allowed(local_server, monkeypatch):
    # 127.0.0.1 is fetched only because it is on the host allow-list (tests/test_urls.py: SSRF).
    monkeypatch.setenv("CLASSER_URL_HOSTS", "127.0.0.1")
    assert load_images(f"{local_server}/cat.jpg", allow_urls=True)[0].size == (32, 32)
    monkeypatch.setenv("CLASSER_ALLOW_URLS", "1")
    assert load_document(f"{local_server}/memo.pdf").kind == "pdf"
    with pytest.raises(UnprocessableInputError) as e:
        load_images(f"{local_server}/missing.jpg")
    assert e.value.code == "url_not_allowed" and e.value.status == 422  # a 404 says no more than any failure


# --- documents ------------------------------------------------------------------------------


def test_real_pdf_fixture():
    doc = load_document(PDF)
    assert isinstance(doc, Document) and doc.kind == "pdf" and doc.n_pages == len(doc.pages) == 1
    assert "To Whom it May Concern" in doc.text
    assert 600 <= max(doc.pages[0].size) <= 900 and doc.pages[0].mode == "RGB"


def test_real_docx_fixture_text_and_rendered_pages():
    doc = load_document(str(DOCX))
    assert doc.kind == "docx" and doc.n_pages == len(doc.pages) >= 1
    assert "US Trustee Handbook" in doc.text and "CHAPTER 1" in doc.text
    page = doc.pages[0]
    assert 600 <= max(page.size) <= 900
    assert page.convert("L").getextrema()[0] < 100  # text was drawn on the white page


def test_docx_tables_headers_footers(tmp_path):
    import docx

    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = "ACME Corp letterhead"
    d.sections[0].footer.paragraphs[0].text = "Page footer text"
    d.add_heading("Mutual NDA", level=1)
    d.add_paragraph("Body paragraph.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Party", "Acme"
    table.cell(1, 0).text, table.cell(1, 1).text = "Term", "2 years"
    path = tmp_path / "t.docx"
    d.save(path)
    doc = load_document(path.read_bytes())
    lines = doc.text.splitlines()
    assert lines[0] == "ACME Corp letterhead" and lines[-1] == "Page footer text"
    assert "Party | Acme" in lines and "Term | 2 years" in lines and "Mutual NDA" in lines


@pytest.mark.parametrize("form", ["bytes", "base64", "data_url", "file"])
def test_document_forms(form):
    raw = PDF.read_bytes()
    value = {
        "bytes": raw,
        "base64": base64.b64encode(raw).decode(),
        "data_url": "data:application/pdf;base64," + base64.b64encode(raw).decode(),
        "file": io.BytesIO(raw),
    }[form]
    assert load_document(value).n_pages == 1


def test_render_false_skips_pages():
    doc = load_document(PDF, render=False)
    assert doc.pages == [] and doc.n_pages == 1 and doc.text


def test_too_many_pages(tmp_path):
    assert load_document(pdf_bytes(MAX_PAGES), render=False).n_pages == MAX_PAGES
    with pytest.raises(InvalidRequestError) as e:
        load_document(pdf_bytes(MAX_PAGES + 1))
    assert e.value.code == "file_too_many_pages" and e.value.details == {"pages": 21, "limit": 20, "kind": "pdf"}


def test_docx_too_many_pages():
    import docx

    d = docx.Document()
    for i in range(MAX_PAGES * 60):
        d.add_paragraph(f"Line {i} of a very long agreement.")
    buf = io.BytesIO()
    d.save(buf)
    with pytest.raises(InvalidRequestError) as e:
        load_document(buf.getvalue())
    assert e.value.code == "file_too_many_pages" and e.value.details["kind"] == "docx"


def test_encrypted_pdf():
    import pymupdf

    raw = pdf_bytes(1, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    with pytest.raises(UnprocessableInputError) as e:
        load_document(raw)
    assert e.value.code == "document_encrypted" and e.value.status == 422


def test_corrupt_empty_and_unsupported():
    raw = pdf_bytes(2)
    cases = {
        raw[:200]: "document_corrupt",  # cut before the first page object (mupdf repairs milder cuts)
        b"%PDF-1.7\n this is not really a pdf": "document_corrupt",
        b"": "document_empty",
        pdf_bytes(2, text=""): "document_empty",  # only blank pages
        b"PK\x03\x04 broken zip word/document.xml": "document_corrupt",
        b"\x00\x01 random bytes" * 10: "document_unsupported",
    }
    for data, code in cases.items():
        with pytest.raises(UnprocessableInputError) as e:
            load_document(data)
        assert e.value.code == code, data[:20]


def test_scanned_pdf_without_text_layer_uses_pages():
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(50, 50, 300, 300), stream=CAT.read_bytes())
    result = load_document(doc.tobytes())
    assert result.text == "" and result.n_pages == 1 and len(result.pages) == 1


def test_import_stays_light():
    code = (
        "import sys, classer_local, classer_local.inputs, classer_local.vision\n"
        "heavy = {'torch', 'PIL', 'fitz', 'pymupdf', 'docx', 'timm', 'open_clip'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
