"""Bounded work: every limit is checked before the expensive part, with real files built here."""

from __future__ import annotations

import copy
import io
import struct
import time
import zipfile
import zlib

import pytest
from PIL import Image

from classer_local.errors import InvalidRequestError, UnprocessableInputError
from classer_local.inputs import (
    LIMITS,
    MAX_DECODE_PIXELS,
    MAX_DOCX_BLOCKS,
    MAX_PIXELS,
    MAX_REQUEST_PIXELS,
    PixelBudget,
    image_pixels,
    load_document,
    load_image,
    load_images,
)
from classer_local.inputs import limits as limits_mod
from classer_local.inputs.documents import PAGE_INFO_KEY
from classer_local.inputs.images import _open


def _docx(paragraphs: int = 0, header_paragraphs: int = 0, table: tuple[int, int] | None = None) -> bytes:
    import docx

    d = docx.Document()
    for i in range(min(paragraphs, 100)):
        d.add_paragraph("x" if paragraphs > 100 else f"Paragraph {i}.")
    if paragraphs > 100:  # the rest as copies of one (python-docx's add_paragraph is slow in bulk)
        first = d.paragraphs[0]._p
        for _ in range(paragraphs - 100):
            first.addnext(copy.deepcopy(first))
    if header_paragraphs:
        header = d.sections[0].header
        first = header.add_paragraph("h")._p
        for _ in range(header_paragraphs - 1):
            first.addnext(copy.deepcopy(first))
    if table:
        t = d.add_table(rows=table[0], cols=table[1])
        for row in t.rows:
            for cell in row.cells:
                cell.text = "v"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _png(size: tuple[int, int], color=(255, 255, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def _declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header declares width x height (IHDR rewritten, CRC fixed)."""
    raw = bytearray(_png((1, 1)))
    ihdr = raw[12:29]
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(raw)


# --- DOCX -----------------------------------------------------------------------------------


def test_docx_of_20000_one_line_paragraphs_refused_in_under_a_second():
    data = _docx(paragraphs=20_000)
    assert len(data) < 45_000  # the 39 KB file of the attack
    t0 = time.perf_counter()
    with pytest.raises(InvalidRequestError) as e:
        load_document(data)
    elapsed = time.perf_counter() - t0
    assert e.value.code == "file_too_many_blocks" and e.value.status == 400
    assert e.value.details == {"blocks": 20_000, "limit": MAX_DOCX_BLOCKS, "kind": "docx"}
    assert elapsed < 1.0, elapsed  # was 21.8 s (styles looked up per paragraph, then typeset)


def test_docx_blocks_in_headers_and_table_cells_count_too():
    with pytest.raises(InvalidRequestError) as e:
        load_document(_docx(paragraphs=1, header_paragraphs=MAX_DOCX_BLOCKS))
    assert e.value.code == "file_too_many_blocks"
    with pytest.raises(InvalidRequestError) as e:
        load_document(_docx(table=(MAX_DOCX_BLOCKS // 4 + 1, 4)))
    assert e.value.code == "file_too_many_blocks" and e.value.details["blocks"] > MAX_DOCX_BLOCKS


def test_docx_just_under_the_block_limit_is_read_fast():
    load_document(_docx(paragraphs=3))  # warm pymupdf's typesetter
    data = _docx(paragraphs=MAX_DOCX_BLOCKS - 10)
    t0 = time.perf_counter()
    with pytest.raises(InvalidRequestError) as e:
        load_document(data)
    assert e.value.code == "file_too_many_pages"  # 5,000 lines do not fit 20 pages
    assert time.perf_counter() - t0 < 3.0


def test_docx_headings_and_lists_still_styled_in_page_text():
    import docx

    d = docx.Document()
    d.add_heading("Mutual NDA", level=1)
    d.add_paragraph("First item", style="List Bullet")
    buf = io.BytesIO()
    d.save(buf)
    doc = load_document(buf.getvalue())
    assert doc.text.splitlines() == ["Mutual NDA", "First item"]
    assert doc.pages[0].info.get(PAGE_INFO_KEY) is True


def test_docx_zip_bomb_refused_before_parsing():
    data = _docx(paragraphs=1)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr("word/padding.xml", b" " * (limits_mod.MAX_DOCX_XML_BYTES + 1))
    assert len(out.getvalue()) < 200_000
    with pytest.raises(InvalidRequestError) as e:
        load_document(out.getvalue())
    assert e.value.code == "file_too_large" and e.value.details["limit"] == limits_mod.MAX_DOCX_XML_BYTES


def test_docx_with_a_lying_zip_directory_is_corrupt_not_a_bomb():
    """Sizes small in the directory, 40 MB in the stream: zipfile stops at the declared size (CRC error)."""
    data = _docx(paragraphs=1)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "word/document.xml":
                declared, body = len(body), body + b" " * 40_000_000
            dst.writestr(item.filename, body)
    raw = bytearray(out.getvalue())
    name = b"word/document.xml"
    local = raw.find(b"PK\x03\x04")  # the local header that names document.xml
    while raw[local + 30: local + 30 + len(name)] != name:
        local = raw.find(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", raw, local + 22, declared)
    central = raw.find(b"PK\x01\x02")
    while raw[central + 46: central + 46 + len(name)] != name:
        central = raw.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", raw, central + 24, declared)
    t0 = time.perf_counter()
    with pytest.raises(UnprocessableInputError) as e:
        load_document(bytes(raw))
    assert e.value.code == "document_corrupt"
    assert time.perf_counter() - t0 < 2.0


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_counted_before_rendering():
    import pymupdf

    doc = pymupdf.open()
    for i in range(500):
        doc.new_page().insert_text((72, 72), f"page {i}")
    data = doc.tobytes()
    t0 = time.perf_counter()
    with pytest.raises(InvalidRequestError) as e:
        load_document(data)
    assert e.value.code == "file_too_many_pages" and e.value.details["pages"] == 500
    assert time.perf_counter() - t0 < 1.0


def test_document_pages_charge_the_pixel_budget():
    import pymupdf

    doc = pymupdf.open()
    for _ in range(3):
        doc.new_page(width=595, height=842).insert_text((72, 72), "Invoice")
    data = doc.tobytes()
    budget = PixelBudget(2 * 601 * 850)
    with pytest.raises(InvalidRequestError) as e:
        load_document(data, budget=budget)
    assert e.value.code == "pixel_budget_exceeded" and budget.used == 0
    assert load_document(data, render=False).n_pages == 3  # text only: nothing rendered, no budget needed
    big = PixelBudget()
    assert len(load_document(data, budget=big).pages) == 3 and big.used == 3 * 601 * 850


# --- images ---------------------------------------------------------------------------------


def test_eleven_compressible_8000px_pngs_refused_in_under_a_second():
    png = _png((8000, 8000))
    assert len(png) * 11 < 2_500_000  # a small body
    t0 = time.perf_counter()
    with pytest.raises(InvalidRequestError) as e:
        load_images([png] * 11)
    elapsed = time.perf_counter() - t0
    assert e.value.code == "pixel_budget_exceeded" and e.value.status == 400
    assert e.value.details == {"pixels": 11 * 64_000_000, "limit": MAX_REQUEST_PIXELS}
    assert elapsed < 1.0, elapsed  # was 15.0 s: every image inflated to 192 MB and resized


def test_pixel_budget_shared_across_calls_of_one_request():
    budget = PixelBudget(3 * 64 * 64)
    small = _png((64, 64))
    assert len(load_images([small, small], budget=budget)) == 2
    assert budget.left == 64 * 64
    load_image(small, budget=budget)
    with pytest.raises(InvalidRequestError) as e:
        load_image(small, budget=budget)
    assert e.value.code == "pixel_budget_exceeded" and budget.left == 0


def test_image_pixels_counts_a_whole_request_from_headers_only():
    png = _png((8000, 8000))
    buf = io.BytesIO()
    Image.new("RGB", (6000, 4000)).save(buf, "JPEG")
    t0 = time.perf_counter()
    assert image_pixels([png] * 11) == 11 * 64_000_000
    assert image_pixels(buf.getvalue()) == 3000 * 2000  # at its draft size
    assert time.perf_counter() - t0 < 1.0  # nothing was inflated
    with pytest.raises(UnprocessableInputError) as e:
        image_pixels([png, _declaring(100_000, 100_000)])
    assert e.value.code == "decompression_bomb" and e.value.details["index"] == 1


def test_decoded_pil_images_cost_nothing_but_bombs_are_still_refused():
    im = Image.new("RGB", (2000, 1500))
    assert len(load_images([im] * 5, budget=PixelBudget(1))) == 5
    with pytest.raises(UnprocessableInputError) as e:
        load_images(Image.new("1", (9000, 9000)))
    assert e.value.code == "decompression_bomb" and "9000x9000" in e.value.message


def test_large_jpeg_decoded_at_draft_size_and_counted_so():
    buf = io.BytesIO()
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(buf, "JPEG", quality=80)
    jpeg = buf.getvalue()
    im, cost = _open(jpeg, 0)
    assert im.size == (3000, 2000) and cost == 3000 * 2000  # 1/2 scale: the smallest that is >= 4 MP
    # five 24 MP photos declare 120 MP, over the budget, but decode at 30 MP: accepted
    out = load_images([jpeg] * 5)
    assert all(w * h <= MAX_PIXELS for w, h in (o.size for o in out))
    assert out[0].size == (2508, 1672)


@pytest.mark.skipif(not __import__("PIL.features").features.check("jpg_2000"), reason="no openjpeg")
def test_large_jpeg2000_decoded_at_a_reduced_level():
    buf = io.BytesIO()
    Image.new("RGB", (4400, 4400), (10, 20, 30)).save(buf, "JPEG2000", irreversible=True, quality_layers=[40])
    im, cost = _open(buf.getvalue(), 0)
    assert cost == 2200 * 2200  # resolution level 1: half each side
    assert load_image(buf.getvalue()).size == (2048, 2048)


@pytest.mark.parametrize("w, h", [(9000, 9000), (12_000, 12_000), (100_000, 100_000)])
def test_decompression_bomb_message_states_the_real_size(w, h):
    # 81 MP (our limit), 144 MP (Pillow's warning), 10 GP (Pillow's error): each says its size
    with pytest.raises(UnprocessableInputError) as e:
        load_images(_declaring(w, h))
    assert e.value.code == "decompression_bomb"
    assert f"{w}x{h}" in e.value.message and "0x0" not in e.value.message
    assert e.value.details["width"] == w and e.value.details["pixels"] == w * h
    assert e.value.details["limit"] == MAX_DECODE_PIXELS


def test_limits_table_lists_every_limit_with_its_error():
    names = {row[0] for row in LIMITS}
    assert {"MAX_IMAGES", "MAX_DECODE_PIXELS", "MAX_REQUEST_PIXELS", "MAX_PAGES", "MAX_DOCX_BLOCKS",
            "MAX_DOCX_XML_BYTES", "MAX_DOCUMENT_BYTES", "URL_TIMEOUT_S"} <= names
    for name, value, code, what in LIMITS:
        assert getattr(limits_mod, name) == value and what
        assert name in (limits_mod.__doc__ or "")
