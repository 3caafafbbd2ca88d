"""The pure parts of AI: context within a budget, titles, the SSE chunk parser."""

from __future__ import annotations

import pytest

from actors.ai_context import build_context, short_title, visible
from actors.ai_providers import ProviderError, SseChatStream, Usage, parse_providers
from storage.base import StoredMessage


def message(seq: int, sender: str, text: str) -> StoredMessage:
    return StoredMessage(f"m{seq}", "r", seq, sender, f"c{seq}", text, seq)


def test_the_context_keeps_the_newest_messages_that_fit_the_budget():
    history = [
        message(i, "ai:m" if i % 2 == 0 else "u1", f"message number {i} " + "x" * 40)
        for i in range(1, 21)
    ]
    context = build_context("Be brief.", history, budget_tokens=100)
    assert context[0] == {"role": "system", "content": "Be brief."}
    kept = context[1:]
    assert kept[-1]["content"] == history[-1].text  # the prompt being answered is last
    assert 1 < len(kept) < len(history)
    assert kept[0]["role"] == "user"  # a conversation never opens with the assistant
    assert [m["content"] for m in kept] == [m.text for m in history[-len(kept) :]]


def test_the_prompt_is_kept_even_when_it_alone_is_over_the_budget():
    context = build_context("", [message(1, "u1", "y" * 1000)], budget_tokens=10)
    assert context == [{"role": "user", "content": "y" * 1000}]


def test_group_rooms_tell_people_apart_and_hidden_messages_are_left_out():
    history = [message(1, "u1", "hi"), message(2, "u2", "hello"), message(3, "u1", "@ai sum up")]
    shown = visible(history, [(2, 2)])
    assert [m["content"] for m in build_context("", shown, budget_tokens=1000, group=True)] == [
        "u1: hi",
        "u1: @ai sum up",
    ]


def test_titles_are_the_first_words_of_the_first_prompt():
    assert short_title("What is trio?") == "What is trio?"
    assert short_title("one two three four five six seven eight") == "one two three four five six…"
    assert short_title("   ") == "New conversation"


class lines_of:  # noqa: N801 - reads like the generator it stands for
    """SSE lines as network-sized byte chunks (a plain iterator: nothing for the GC to close)."""

    def __init__(self, *lines: str) -> None:
        # Split at awkward places, as the network does: mid-line and mid-"\r\n".
        data = "".join(line + "\r\n" for line in lines).encode()
        self._parts = iter(data[i : i + 7] for i in range(0, len(data), 7))

    def __aiter__(self) -> lines_of:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._parts)
        except StopIteration:
            raise StopAsyncIteration from None


async def events(*lines: str) -> list:
    stream = SseChatStream(lines_of(*lines))
    got = []
    while batch := await stream.next_batch():
        got.extend(batch)
    return got


async def test_the_sse_parser_reads_deltas_usage_and_done_and_skips_comments():
    chunk = '{"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}'
    got = await events(
        ": keep-alive",
        "data: " + chunk % "Hel",
        "",
        "data:" + chunk % "lo",
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        "data: [DONE]",
    )
    assert got == ["Hel", "lo", Usage(3, 2)]


class reads_of:  # noqa: N801 - reads like the generator it stands for
    """Byte chunks exactly as given: one network read each."""

    def __init__(self, *reads: bytes) -> None:
        self._reads = iter(reads)

    def __aiter__(self) -> reads_of:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._reads)
        except StopIteration:
            raise StopAsyncIteration from None


def sse(*payloads: str) -> bytes:
    return b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)


DELTA = '{"choices":[{"delta":{"content":"%s"}}]}'


async def test_the_deltas_of_one_read_come_out_as_one_batch():
    stream = SseChatStream(reads_of(sse(DELTA % "a", DELTA % "b"), sse(DELTA % "c"), sse("[DONE]")))
    assert await stream.next_batch() == ["a", "b"]
    assert await stream.next_batch() == ["c"]
    assert await stream.next_batch() == []


async def test_a_broken_line_comes_as_an_error_after_the_deltas_before_it():
    stream = SseChatStream(reads_of(sse(DELTA % "a", "{not json", DELTA % "b")))
    assert await stream.next_batch() == ["a"]
    with pytest.raises(ProviderError, match="malformed"):
        await stream.next_batch()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["data: {not json"], "malformed"),
        (['data: {"choices":[{"delta":{"content":"a"}}]}'], "ended before"),
        (['data: {"error":{"message":"overloaded"}}'], "overloaded"),
    ],
)
async def test_a_broken_stream_is_a_provider_error(lines: list[str], message: str):
    with pytest.raises(ProviderError) as caught:
        await events(*lines)
    assert message in caught.value.message


@pytest.mark.parametrize(
    "raw",
    ["[", "[]", '{"p": {"models": []}}', '{"p": {"base_url": "x", "models": [1]}}'],
)
def test_bad_provider_settings_are_refused_with_their_name(raw: str):
    with pytest.raises(ValueError, match="AI_PROVIDERS"):
        parse_providers(raw)
