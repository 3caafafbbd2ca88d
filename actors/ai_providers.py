"""AI providers: OpenAI-compatible endpoints through the ``openai`` SDK, and an offline one.

Rules:
- One ``AsyncOpenAI`` client per provider for the node's life: its connection
  pool is reused by every generation (starting a request costs more than a
  chunk). The SDK runs on trio.
- The stream is read as raw SSE bytes (``with_streaming_response``, then the
  response's ``aiter_bytes``); lines are split here and each ``data:`` line is
  decoded by a msgspec decoder of only the fields we use: the SDK's pydantic
  chunk objects cost ~10x more CPU per token, and per-token CPU is what limits
  how many generations a node carries. Auth, base_url, HTTP errors and timeouts stay the SDK's.
- ``open_stream`` is an async context manager: leaving it (normally, on error,
  or because the generation was stopped and its scope cancelled) closes the
  upstream HTTP response, so the provider stops generating.
- Every failure leaves as ``ProviderError`` with an ``ErrorCode``; the
  generation decides what to keep.
- The offline provider (model ``offline``) needs no key and no network: it
  streams a fixed-shape answer word by word, so a fresh install shows the
  feature working.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec
import trio

from protocol.errors import ErrorCode

if TYPE_CHECKING:  # the SDK loads pydantic: imported at run time only when configured
    from openai.types.chat import ChatCompletionMessageParam

OFFLINE_MODEL = "offline"


class ProviderError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code.value}: {message}")


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    base_url: str
    api_key: str
    models: tuple[str, ...]


def estimate_tokens(text: str) -> int:
    """A provider-independent estimate: about four characters per token."""
    return len(text) // 4 + 1


# ----- the stream decoder ---------------------------------------------------------


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: Any = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)

# What a stream yields: a text delta, or the usage (last, when the provider sends it).
StreamEvent = str | Usage


class EventStream(Protocol):
    """What ``open_stream`` yields: ``next_batch()`` until it answers [] (the end)."""

    async def next_batch(self) -> list[StreamEvent]: ...


class SseChatStream:
    """Turns the raw bytes of a chat.completions SSE stream into events.

    ``next_batch()`` returns every event the bytes received so far hold (text
    deltas, non-empty, and a ``Usage``), waiting for more only when there is
    none, and [] at ``data: [DONE]``: under load one network read carries
    several deltas, and the generation relays them in one step and one write
    per session, so its cost per delta falls as the load rises. A stream that
    ends before ``[DONE]`` or holds a line that is not a chunk raises
    ``ProviderError``, after the events before it have been returned. Lines
    are split here, on bytes, and each ``data:`` payload goes to msgspec as
    bytes: no text decoding or line iteration per chunk in the HTTP library's
    generators.
    """

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._lines: deque[bytes] = deque()
        self._partial = b""
        self._error: ProviderError | None = None  # raised once the events before it are out
        self.done = False

    async def next_batch(self) -> list[StreamEvent]:
        if self._error is not None:
            raise self._error
        events: list[StreamEvent] = []
        lines = self._lines
        while not self.done:
            while lines:
                line = lines.popleft()
                if not line.startswith(b"data:"):
                    continue  # blank separators, ": keep-alive" comments, event:/id: fields
                try:
                    event = self._event(line[5:].strip())
                except ProviderError as exc:
                    if not events:
                        raise
                    self._error = exc
                    return events
                if event is not None:
                    events.append(event)
                if self.done:
                    return events
            if events:
                return events
            try:
                data = await self._chunks.__anext__()
            except StopAsyncIteration:
                if self._partial:
                    lines.append(self._partial)
                    self._partial = b""
                    continue
                raise ProviderError(
                    ErrorCode.AI_PROVIDER_ERROR,
                    "The provider's stream ended before it was complete.",
                ) from None
            parts = (self._partial + data).split(b"\n")
            self._partial = parts.pop()
            lines.extend(p[:-1] if p.endswith(b"\r") else p for p in parts)
        return events

    def _event(self, payload: bytes) -> StreamEvent | None:
        if payload == b"[DONE]":
            self.done = True
            return None
        try:
            chunk = _chunk_decoder.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            raise ProviderError(
                ErrorCode.AI_PROVIDER_ERROR, "The provider sent a malformed stream chunk."
            ) from None
        if chunk.error is not None:
            raise ProviderError(
                ErrorCode.AI_PROVIDER_ERROR, f"The provider reported: {_describe(chunk.error)}"
            )
        if chunk.usage is not None:
            return Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            if choice.delta.content:
                return choice.delta.content
        return None


def _describe(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        return message[:200]
    return json.dumps(error)[:200]


# ----- providers ----------------------------------------------------------------


class OpenAIProvider:
    """Any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp, a gateway)."""

    def __init__(self, config: ProviderConfig, *, timeout: float, max_retries: int) -> None:
        from openai import AsyncOpenAI  # the SDK loads pydantic: only when configured

        self.name = config.name
        self.client = AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "none",
            timeout=timeout,
            max_retries=max_retries,
        )

    @asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[SseChatStream]:
        import openai

        kwargs: dict[str, Any] = {}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        try:
            async with self.client.chat.completions.with_streaming_response.create(
                model=request.model,
                # The messages go in ``extra_body``, which the SDK merges into
                # the JSON as given (documented: extra properties win): its
                # recursive TypedDict transform of ``messages`` walks the whole
                # context and cost ~1 ms of CPU per request here. They are
                # already plain {"role", "content"} dicts of strings.
                messages=cast("list[ChatCompletionMessageParam]", []),
                extra_body={"messages": request.messages},
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            ) as response:
                # Bytes, not the SDK's iter_lines: one generator instead of a
                # stack of them per chunk. Raw when the body is not compressed
                # (SSE seldom is): no decoder and chunker pass per read.
                http = response.http_response
                identity = http.headers.get("content-encoding", "identity") == "identity"
                chunks = http.aiter_raw() if identity else http.aiter_bytes()
                try:
                    yield SseChatStream(chunks)
                finally:
                    await response.close()
                    await _exhaust(chunks)
        except openai.APITimeoutError:
            raise ProviderError(
                ErrorCode.AI_PROVIDER_TIMEOUT, f"Provider {self.name!r} timed out."
            ) from None
        except openai.APIStatusError as exc:
            raise ProviderError(
                ErrorCode.AI_PROVIDER_ERROR,
                f"Provider {self.name!r} answered HTTP {exc.status_code}.",
            ) from None
        except openai.APIConnectionError:
            raise ProviderError(
                ErrorCode.AI_PROVIDER_ERROR, f"Provider {self.name!r} is unreachable."
            ) from None
        except openai.OpenAIError as exc:
            raise ProviderError(
                ErrorCode.AI_PROVIDER_ERROR, f"Provider {self.name!r} failed: {type(exc).__name__}"
            ) from None
        except ProviderError:
            raise
        except Exception as exc:
            # Transport errors while reading the body (connection reset, broken
            # chunked encoding) come from the HTTP library, not as SDK types.
            raise ProviderError(
                ErrorCode.AI_PROVIDER_ERROR,
                f"Provider {self.name!r} broke off the stream ({type(exc).__name__}).",
            ) from None

    async def aclose(self) -> None:
        await self.client.close()


async def _exhaust(chunks: AsyncIterator[bytes]) -> None:
    """Run the HTTP library's byte generators to their end once the response is closed.

    ``aiter_bytes`` is a stack of async generators (httpx's); left
    suspended after a stop or an error they would be finalised by the garbage
    collector instead (trio warns). On a closed response they end at once.
    """
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            async for _ in chunks:
                pass
        except Exception:  # the closed stream's own error ends the stack too
            pass


class _OfflineStream:
    def __init__(self, words: list[str], delay: float, prompt_tokens: int) -> None:
        self._words = words
        self._delay = delay
        self._i = 0
        self._prompt = prompt_tokens
        self._usage_sent = False

    async def next_batch(self) -> list[StreamEvent]:
        if self._i < len(self._words):
            await trio.sleep(self._delay)
            word = self._words[self._i]
            self._i += 1
            return [word]
        if not self._usage_sent:
            self._usage_sent = True
            return [Usage(self._prompt, estimate_tokens("".join(self._words)))]
        return []


class OfflineProvider:
    """Answers without a network, word by word: the default when no key is configured."""

    name = "offline"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    @asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[_OfflineStream]:
        prompt = request.messages[-1]["content"] if request.messages else ""
        text = (
            "This answer comes from the built-in offline model: no AI provider is "
            f"configured on this server. You wrote {len(prompt.split())} words, starting "
            f"with: {' '.join(prompt.split()[:12])}"
        )
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1].rstrip()
        prompt_tokens = sum(estimate_tokens(m["content"]) for m in request.messages)
        yield _OfflineStream(words, self.delay, prompt_tokens)

    async def aclose(self) -> None:
        pass


Provider = OpenAIProvider | OfflineProvider


def parse_providers(raw: str) -> list[ProviderConfig]:
    """``AI_PROVIDERS``: a JSON object ``{name: {base_url, api_key, models: [...]}}``."""
    if not raw.strip():
        return []
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"AI_PROVIDERS is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("AI_PROVIDERS must be a JSON object of providers by name")
    configs = []
    for name, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("base_url"), str):
            raise ValueError(f"AI_PROVIDERS[{name!r}] needs a base_url string")
        models = spec.get("models", [])
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ValueError(f"AI_PROVIDERS[{name!r}].models must be a list of model names")
        configs.append(
            ProviderConfig(name, spec["base_url"], str(spec.get("api_key", "")), tuple(models))
        )
    return configs


@dataclass
class Providers:
    """Every configured provider, by the models it serves. First provider wins a name."""

    by_model: dict[str, Provider] = field(default_factory=dict)
    default_model: str = OFFLINE_MODEL

    @classmethod
    def from_settings(cls, settings: Any) -> Providers:
        providers = cls(default_model=settings.ai_default_model)
        for config in parse_providers(settings.ai_providers):
            # A provider with no key is disabled unless it is keyless by nature
            # (a local Ollama or llama.cpp): say so with "api_key": "none".
            if not config.api_key:
                continue
            client = OpenAIProvider(
                config, timeout=settings.ai_request_timeout, max_retries=settings.ai_max_retries
            )
            for model in config.models:
                providers.by_model.setdefault(model, client)
        providers.by_model.setdefault(OFFLINE_MODEL, OfflineProvider(settings.ai_offline_delay))
        return providers

    def get(self, model: str) -> Provider | None:
        return self.by_model.get(model)

    def models(self) -> list[str]:
        return list(self.by_model)

    async def aclose(self) -> None:
        seen: set[int] = set()
        for provider in self.by_model.values():
            if id(provider) not in seen:
                seen.add(id(provider))
                await provider.aclose()
