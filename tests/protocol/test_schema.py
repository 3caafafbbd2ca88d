"""The committed schema and protocol document match the code that generates them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from protocol.errors import CLOSE_REASONS, ERROR_MESSAGES, CloseCode, ErrorCode
from protocol.schema import (
    EXAMPLES,
    frame_types,
    markdown_blocks,
    render_schema,
    schema_document,
    splice_blocks,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = DOCS / "protocol.schema.json"
PROTOCOL_MD = DOCS / "protocol.md"
STALE = "stale: run `python -m protocol.schema` and commit the result"


def test_committed_schema_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render_schema(), STALE


def test_schema_output_is_deterministic() -> None:
    assert render_schema() == render_schema()
    assert json.loads(render_schema()) == schema_document()


def test_schema_holds_every_frame_and_code_table() -> None:
    defs = schema_document()["$defs"]
    for tag, cls in frame_types().items():
        assert defs[cls.__name__]["properties"]["t"] == {"enum": [tag]}
        assert defs[cls.__name__]["examples"], tag
    client_tags = set(defs["ClientFrame"]["discriminator"]["mapping"])
    server_tags = set(defs["ServerFrame"]["discriminator"]["mapping"])
    assert client_tags | server_tags == set(frame_types())
    assert defs["ErrorCode"]["enum"] == [c.value for c in ErrorCode]
    assert defs["ErrorCode"]["x-enum-descriptions"] == [ERROR_MESSAGES[c] for c in ErrorCode]
    assert defs["CloseCode"]["enum"] == [c.value for c in CloseCode]
    assert defs["CloseCode"]["x-enum-descriptions"] == [CLOSE_REASONS[c] for c in CloseCode]


def test_every_frame_has_an_example() -> None:
    assert set(EXAMPLES) == set(frame_types())
    for tag, example in EXAMPLES.items():
        assert type(example) is frame_types()[tag]


def test_protocol_md_generated_blocks_are_current() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    assert splice_blocks(text) == text, STALE
    for name in markdown_blocks():
        assert f"<!-- generated:{name} -->" in text


def test_protocol_md_names_every_code_and_frame() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    for error in ErrorCode:
        assert f"`{error.value}`" in text, error
    for close in CloseCode:
        assert f"| {close.value} | `{close.name}` |" in text, close
    for tag in frame_types():
        assert f"### `{tag}`" in text, f"frame {tag!r} has no section"


def test_protocol_md_names_every_field() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    for name, definition in schema_document()["$defs"].items():
        for field in definition.get("properties", {}):
            assert f"`{field}`" in text or f"`d.{field}`" in text, f"{name}.{field}"


def test_check_mode_passes_on_the_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "protocol.schema", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
