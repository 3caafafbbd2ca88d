"""Project files without I/O: type from the bytes, text extraction, chunks, and the context."""

from __future__ import annotations

import io
import zipfile

import pytest

from actors.ai_files import (
    FILES_HEADER,
    chunk_text,
    files_budget,
    files_of,
    pick_chunks,
    search_terms,
    with_files,
)
from actors.ai_providers import estimate_tokens
from bridge.errors import BridgeError
from bridge.files.file_text import DOCX, MARKDOWN, PDF, TEXT, classify, extract_sync, normalise
from realtime_server.base.settings import Settings
from storage.ai_files import FileChunk, FileRef
from tests.ai.file_samples import docx_bytes, tiny_pdf


def refused(exc: pytest.ExceptionInfo[BridgeError]) -> tuple[int, str]:
    from bridge.errors import STATUS

    return STATUS[exc.value.code], str(exc.value.code)


# ----- type from the bytes -----


def test_the_type_comes_from_the_bytes_and_the_name_only_picks_markdown():
    assert classify(b"# Title\n", "notes.md", "") == MARKDOWN
    assert classify(b"# Title\n", "notes.txt", "text/plain") == TEXT
    assert classify("plain é".encode(), "script.py", "") == TEXT
    assert classify(tiny_pdf(["x"]), "scan", "application/octet-stream") == PDF
    assert classify(docx_bytes(["x"]), "report.docx", DOCX) == DOCX
    assert classify(docx_bytes(["x"]), "report.docx", "application/zip") == DOCX
    assert classify(b"a,b\n1,2\n", "table.csv", "text/csv") == TEXT


@pytest.mark.parametrize(
    ("data", "name", "declared", "status", "code"),
    [
        (b"just text", "fake.pdf", "", 415, "media_type_mismatch"),
        (b"%PDF-1.4 ...", "real.txt", "", 415, "media_type_mismatch"),
        (b"hello", "notes.txt", "application/pdf", 415, "media_type_mismatch"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "photo.png", "image/png", 415, "unsupported_media_type"),
        (b"\xff\xfe\x00b\x00i\x00n", "data.bin", "", 415, "unsupported_media_type"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "photo.md", "", 415, "media_type_mismatch"),
    ],
)
def test_wrong_types_are_refused_with_the_reason(data, name, declared, status, code):
    with pytest.raises(BridgeError) as exc:
        classify(data, name, declared)
    assert refused(exc) == (status, code)


# ----- text extraction -----


def test_pdf_docx_and_text_give_their_text():
    assert extract_sync(tiny_pdf(["Cloves grow on Zanzibar.", "Second line."]), PDF, 1000) == (
        "Cloves grow on Zanzibar.\nSecond line."
    )
    docx = docx_bytes(["First paragraph.", "Second one."], table=[["Name", "Age"], ["Ada", "36"]])
    assert extract_sync(docx, DOCX, 1000) == (
        "First paragraph.\n\nSecond one.\n\nName | Age\n\nAda | 36"
    )
    assert extract_sync(b"\xef\xbb\xbfline one\r\nline two\x07\r\n\r\n\r\n\r\nend", TEXT, 100) == (
        "line one\nline two\n\nend"
    )


def test_damaged_empty_or_oversized_files_are_refused():
    with pytest.raises(BridgeError) as exc:
        extract_sync(b"%PDF-1.4\nthis is no pdf at all", PDF, 1000)
    assert refused(exc) == (400, "invalid") and "damaged" in exc.value.message
    with pytest.raises(BridgeError) as exc:
        extract_sync(tiny_pdf([]), PDF, 1000)
    assert refused(exc) == (400, "invalid") and "no text" in exc.value.message
    with pytest.raises(BridgeError) as exc:
        extract_sync(b"PK\x03\x04 broken zip", DOCX, 1000)
    assert refused(exc) == (400, "invalid")
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(BridgeError) as exc:
        extract_sync(plain_zip.getvalue(), DOCX, 1000)
    assert refused(exc) == (415, "media_type_mismatch")
    with pytest.raises(BridgeError) as exc:
        extract_sync(b"x" * 101, TEXT, 100)
    assert refused(exc) == (413, "payload_too_large")
    with pytest.raises(BridgeError) as exc:
        extract_sync(docx_bytes(["word " * 50] * 10), DOCX, 1000)
    assert refused(exc) == (413, "payload_too_large")


def test_encrypted_pdfs_and_zip_bombs_are_refused_before_their_text_is_read():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(tiny_pdf(["secret"]))))
    writer.encrypt("password", algorithm="RC4-128")
    locked = io.BytesIO()
    writer.write(locked)
    with pytest.raises(BridgeError) as exc:
        extract_sync(locked.getvalue(), PDF, 1000)
    assert refused(exc) == (400, "invalid") and "encrypted" in exc.value.message

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (65 * 1024 * 1024))
    assert len(bomb.getvalue()) < 200_000
    with pytest.raises(BridgeError) as exc:
        extract_sync(bomb.getvalue(), DOCX, 1000)
    assert refused(exc) == (400, "invalid") and "unpacks" in exc.value.message


def test_normalise_keeps_tabs_and_single_blank_lines():
    assert normalise("  a\tb\r\n\r\n\x07c  ") == "a\tb\n\nc"


# ----- chunks -----


def test_chunks_join_back_to_the_text_and_fit_their_size():
    text = (
        "Intro paragraph about ships.\n\n"
        + "A long line of many words without a full stop " * 20
        + "\n\nShort end. Another sentence! And a question?\n"
        + "x" * 900
    )
    for tokens in (5, 20, 100, 10_000):
        chunks = chunk_text(text, tokens)
        assert "".join(chunks) == text
        assert all(estimate_tokens(c) <= tokens for c in chunks)
    assert chunk_text("short", 100) == ["short"]
    assert chunk_text("", 100) == []


def test_chunks_are_cut_at_paragraphs_first():
    text = "Alpha para one.\n\nBeta para two.\n\nGamma para three."
    assert chunk_text(text, 6) == ["Alpha para one.\n\n", "Beta para two.\n\n", "Gamma para three."]


# ----- what a question gets -----


def test_search_terms_are_distinct_words_without_the_common_ones():
    assert search_terms("What is the capital of Zanzibar? Zanzibar's (capital)!") == [
        "capital",
        "zanzibar",
    ]
    assert search_terms("is it?") == ["is", "it"]  # nothing but common words: keep them
    assert search_terms('a "NEAR" b* OR -c') == ["near"]
    assert len(search_terms(" ".join(f"w{i}" for i in range(100)))) == 32


def chunk(file_id: str, n: int, text: str) -> FileChunk:
    return FileChunk(file_id, f"{file_id}.md", n, text)


def test_chunks_are_picked_in_rank_order_within_the_budget():
    ranked = [chunk("a", 0, "x" * 400), chunk("b", 3, "y" * 400), chunk("a", 1, "z" * 40)]
    header = estimate_tokens(FILES_HEADER)
    assert pick_chunks(ranked, header + 130) == [ranked[0], ranked[2]]
    assert pick_chunks(ranked, header + 300) == ranked
    assert pick_chunks(ranked, header) == []
    assert files_of(ranked) == [FileRef("a", "a.md"), FileRef("b", "b.md")]


def test_the_system_prompt_names_each_chunks_file():
    text = with_files("Be brief.", [chunk("a", 0, "Alpha.\n"), chunk("b", 2, "Beta.")])
    assert text == (
        f"Be brief.\n\n{FILES_HEADER}\n\n"
        "[file: a.md, part 1]\nAlpha.\n\n[file: b.md, part 3]\nBeta."
    )
    assert with_files("Be brief.", []) == "Be brief."
    assert with_files("", [chunk("a", 0, "A")]).startswith(FILES_HEADER)


def test_the_files_budget_is_a_share_of_the_context():
    s = Settings(ai_context_tokens=1000, ai_files_context_tokens=300)
    assert files_budget(s, "", "short question") == 300
    assert files_budget(s, "p" * 2400, "q" * 400) == 1000 - 601 - 101 - 8
    assert files_budget(s, "p" * 8000, "q") == 0
