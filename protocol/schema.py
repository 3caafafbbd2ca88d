"""Machine-readable protocol description, generated from the frame types.

``schema_document()`` builds one JSON Schema (draft 2020-12) holding every
frame in both directions (``$defs.ClientFrame`` and ``$defs.ServerFrame`` are
tagged unions on ``t``), an example of each frame, and the ``ErrorCode`` and
``CloseCode`` tables with their meanings. The same tables and examples, as
Markdown, are spliced into docs/protocol.md between ``<!-- generated:NAME -->``
markers, so the prose document cannot drift from errors.py and frames.py.

Everything here is pure; only ``python -m protocol.schema`` touches files::

    python -m protocol.schema           # rewrite docs/protocol.schema.json and the blocks
    python -m protocol.schema --check   # exit 1 if either is stale
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import msgspec

from protocol.codec import encode
from protocol.errors import CLOSE_REASONS, ERROR_MESSAGES, CloseCode, ErrorCode
from protocol.frames import (
    Auth,
    AuthData,
    ClientFrame,
    Err,
    Hello,
    HelloData,
    Message,
    MsgNew,
    Ok,
    Ping,
    PlanInfo,
    Pong,
    ResumeDone,
    ResumeDoneData,
    ResumeGap,
    ResumeGapData,
    Send,
    SendData,
    ServerFrame,
    Welcome,
    WelcomeData,
)
from protocol.schema_ai import AI_EXAMPLES
from protocol.schema_calls import CALL_EXAMPLES
from protocol.schema_chat import CHAT_EXAMPLES
from protocol.schema_chatlist import CHATLIST_EXAMPLES
from protocol.schema_notify import NOTIFY_EXAMPLES
from protocol.schema_presence import PRESENCE_EXAMPLES
from protocol.schema_stories import STORY_EXAMPLES
from protocol.version import PROTOCOL_VERSION

_REF_TEMPLATE = "#/$defs/{name}"

_TS = 1_700_000_000_000  # a fixed clock, so generated output never changes
_MESSAGE = Message(
    id="m_7c1d", room="r_general", seq=42, sender="u_123", cid="a1b2c3d4", text="Hello!", ts=_TS
)

# One example per frame type, keyed by its ``t``. Rendered into the schema
# (``examples``) and into docs/protocol.md; a frame without one fails generation.
EXAMPLES: dict[str, msgspec.Struct] = {
    "hello": Hello(
        id=1,
        d=HelloData(token="eyJhbGciOi...", v=1, device="pixel-8", cursors={"r_general": 40}),
    ),
    "auth": Auth(id=4, d=AuthData(token="eyJhbGciOi...")),
    "ping": Ping(id=2),
    "msg.send": Send(id=3, d=SendData(room="r_general", cid="a1b2c3d4", text="Hello!")),
    "welcome": Welcome(
        re=1,
        d=WelcomeData(
            user="u_123",
            session="s_9f8e",
            v=1,
            heartbeat=30.0,
            max_frame=65536,
            max_text=4000,
            ts=_TS,
            plan=PlanInfo(
                name="basic",
                ai_left=58,
                ai_month=100,
                ai_month_used=42,
                resets=_TS + 30 * 24 * 3600 * 1000,
                models=["*"],
            ),
        ),
    ),
    "ok": Ok(re=3, d=_MESSAGE),
    "err": Err(code=ErrorCode.NOT_MEMBER.value, msg=ERROR_MESSAGES[ErrorCode.NOT_MEMBER], re=3),
    "pong": Pong(re=2, ts=_TS),
    "msg.new": MsgNew(
        d=Message(
            id="m_8e2f", room="r_general", seq=43, sender="u_456", cid="k3j4", text="Hi!", ts=_TS
        )
    ),
    "resume.gap": ResumeGap(d=ResumeGapData(room="r_random", after=12, last_seq=5012)),
    "resume.done": ResumeDone(d=ResumeDoneData(rooms={"r_general": 43}, evs={"r_general": 7})),
    **CHAT_EXAMPLES,
    **AI_EXAMPLES,
    **CALL_EXAMPLES,
    **PRESENCE_EXAMPLES,
    **CHATLIST_EXAMPLES,
    **NOTIFY_EXAMPLES,
    **STORY_EXAMPLES,
}


def frame_types() -> dict[str, type[msgspec.Struct]]:
    """Every frame class by its ``t``, client frames first."""
    classes: tuple[type[msgspec.Struct], ...] = (*get_args(ClientFrame), *get_args(ServerFrame))
    return {str(cls.__struct_config__.tag): cls for cls in classes}


def schema_document() -> dict[str, Any]:
    (client, server), components = msgspec.json.schema_components(
        (ClientFrame, ServerFrame), ref_template=_REF_TEMPLATE
    )
    extra = {
        "ClientFrame": {
            "title": "ClientFrame",
            "description": "Any frame a client sends: one MessagePack map, tagged by 't'.",
            **client,
        },
        "ServerFrame": {
            "title": "ServerFrame",
            "description": "Any frame the server sends: one MessagePack map, tagged by 't'.",
            **server,
        },
        "ErrorCode": _error_code_schema(),
        "CloseCode": _close_code_schema(),
    }
    # A frame struct named like one of our tables would silently be replaced.
    clash = components.keys() & extra.keys()
    assert not clash, f"struct names clash with schema tables: {sorted(clash)}"
    for tag, cls in frame_types().items():
        components[cls.__name__]["examples"] = [msgspec.to_builtins(_example(tag))]
    _normalise_descriptions(components)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Realtime messaging protocol v{PROTOCOL_VERSION}",
        "description": (
            "Frames are MessagePack maps sent as binary WebSocket messages on /ws. "
            "This schema describes their decoded shape; see docs/protocol.md."
        ),
        "x-protocol-version": PROTOCOL_VERSION,
        "anyOf": [{"$ref": _REF_TEMPLATE.format(name=n)} for n in ("ClientFrame", "ServerFrame")],
        "$defs": {**components, **extra},
    }


def _normalise_descriptions(node: Any) -> None:
    """Dedent every docstring-derived description in place.

    msgspec releases disagree on whether a docstring is dedented before it
    becomes a ``description`` (0.23 dedents, 0.18-0.19 keep the indent), and the
    committed schema must not change with the installed msgspec.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = inspect.cleandoc(value)
            else:
                _normalise_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _normalise_descriptions(item)


def render_schema() -> str:
    """The schema as committed: sorted keys, so output is byte-for-byte stable."""
    return json.dumps(schema_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _error_code_schema() -> dict[str, Any]:
    codes = list(ErrorCode)
    return {
        "title": "ErrorCode",
        "description": (
            "Stable machine codes in the 'code' field of 'err' frames and REST errors. "
            "Never renamed; new ones may be added, so treat an unknown code like 'internal'."
        ),
        "type": "string",
        "enum": [c.value for c in codes],
        "x-enum-varnames": [c.name for c in codes],
        "x-enum-descriptions": [ERROR_MESSAGES[c] for c in codes],
    }


def _close_code_schema() -> dict[str, Any]:
    codes = list(CloseCode)
    return {
        "title": "CloseCode",
        "description": (
            "WebSocket close codes. 4000-4099: reconnect with backoff and resume with "
            "cursors. 4100-4199: terminal, do not reconnect until the user acts."
        ),
        "type": "integer",
        "enum": [c.value for c in codes],
        "x-enum-varnames": [c.name for c in codes],
        "x-enum-descriptions": [CLOSE_REASONS[c] for c in codes],
        "x-enum-reconnect": [c.should_reconnect for c in codes],
    }


def _example(tag: str) -> msgspec.Struct:
    try:
        return EXAMPLES[tag]
    except KeyError:
        raise LookupError(f"add an example {tag!r} frame to protocol.schema.EXAMPLES") from None


# ----- Markdown blocks for docs/protocol.md ---------------------------------


def error_code_table() -> str:
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| `{c.value}` | {_cell(ERROR_MESSAGES[c])} |" for c in ErrorCode]
    return "\n".join(rows)


def close_code_table() -> str:
    rows = [
        "| code | name | auto-reconnect | meaning (also the close reason text) |",
        "|---|---|---|---|",
    ]
    rows += [
        f"| {c.value} | `{c.name}` | {'yes' if c.should_reconnect else 'no'} "
        f"| {_cell(CLOSE_REASONS[c])} |"
        for c in CloseCode
    ]
    return "\n".join(rows)


def example_block(tag: str) -> str:
    """A frame's example as JSON (its decoded shape) and as the bytes on the wire."""
    frame = _example(tag)
    as_json = json.dumps(msgspec.to_builtins(frame), ensure_ascii=False)
    if len(as_json) > 90:
        as_json = json.dumps(msgspec.to_builtins(frame), ensure_ascii=False, indent=2)
    wire = encode(frame)
    rows = [wire[i : i + 16].hex(" ") for i in range(0, len(wire), 16)]
    return "\n".join(
        ["```json", as_json, "```", f"MessagePack, {len(wire)} bytes:", "```", *rows, "```"]
    )


def markdown_blocks() -> dict[str, str]:
    """Every generated block of docs/protocol.md, by marker name."""
    blocks = {"error-codes": error_code_table(), "close-codes": close_code_table()}
    blocks.update({f"example:{tag}": example_block(tag) for tag in frame_types()})
    return blocks


def splice_blocks(markdown: str) -> str:
    """Replace the body between each ``<!-- generated:NAME -->`` pair of markers."""
    for name, block in markdown_blocks().items():
        markdown = _splice(markdown, name, block)
    return markdown


def _splice(markdown: str, name: str, table: str) -> str:
    begin, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    pattern = re.compile(rf"({re.escape(begin)}\n).*?({re.escape(end)})", re.DOTALL)
    if not pattern.search(markdown):
        raise ValueError(f"protocol.md lacks the markers {begin} ... {end}")
    # A function replacement, so the table text is never read as a regex template.
    return pattern.sub(lambda m: f"{m[1]}{table}\n{m[2]}", markdown, count=1)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ----- the only I/O ---------------------------------------------------------


def _main(argv: list[str]) -> int:
    docs = Path(__file__).resolve().parent.parent / "docs"
    targets: dict[Path, Callable[[str], str]] = {
        docs / "protocol.schema.json": lambda _old: render_schema(),
        docs / "protocol.md": splice_blocks,
    }
    check = "--check" in argv
    stale: list[Path] = []
    for path, build in targets.items():
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        new = build(old)
        if new == old:
            continue
        stale.append(path)
        if not check:
            path.write_text(new, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if check else 'wrote'}: {path}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
