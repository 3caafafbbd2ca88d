"""AI test fixtures: a local OpenAI-compatible server and a node pointed at it.

``ai_node`` is a whole node (REST + /ws) whose only provider is ``fake``,
reached through the real ``openai`` SDK; ``ai_node_factory(**overrides)``
starts one with other settings (quota, timeouts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from actors.ai_service import AiService
from protocol.harness.openai_local import FakeOpenAI, open_fake_openai, providers_setting
from realtime_server.node import Node
from tests.conftest import NodeFactory


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with open_fake_openai(delay=0.01) as server:
        yield server


AiNodeFactory = Callable[..., AbstractAsyncContextManager[Node]]


@pytest.fixture
def ai_node_factory(node_factory: NodeFactory, fake: FakeOpenAI) -> AiNodeFactory:
    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Node]:
        settings: dict[str, Any] = {
            "ai_providers": providers_setting(fake),
            "ai_default_model": "test-model",
            "ai_offline_delay": 0.005,
            "ai_first_token_timeout": 5.0,
            "ai_idle_timeout": 5.0,
            "plan_free_ai_monthly": 100,
            "plan_free_models": "*",
        }
        settings.update(overrides)
        async with node_factory(**settings) as node:
            yield node

    return factory


@pytest.fixture
async def ai_node(ai_node_factory: AiNodeFactory) -> AsyncIterator[Node]:
    async with ai_node_factory() as node:
        yield node


@pytest.fixture
async def http(ai_node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ai_node.http_url, timeout=10) as client:
        yield client


def ai_service(node: Node) -> AiService:
    service: AiService = node.gateway.services.ai
    return service
