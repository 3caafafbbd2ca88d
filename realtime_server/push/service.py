"""The node's push service: providers from the settings, one dispatcher, one task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import trio

from realtime_server.settings import Settings
from storage.base import Store

from .dispatcher import PushDispatcher, Sender
from .fcm import FcmSender, ServiceAccount


def senders_from(settings: Settings, client: httpx.AsyncClient) -> dict[str, Sender]:
    """The providers this node is configured for (none: pushes are off)."""
    found: dict[str, Sender] = {}
    if settings.fcm_service_account:
        account = ServiceAccount.load(settings.fcm_service_account)
        found["fcm"] = FcmSender(client, account, base_url=settings.fcm_url)
    return found


async def serve_push(
    settings: Settings,
    store: Store,
    hub: Any,
    clock: Callable[[], int],
    *,
    task_status: trio.TaskStatus[PushDispatcher] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start with the dispatcher the rooms enqueue to; serve it until cancelled."""
    async with httpx.AsyncClient(timeout=settings.push_timeout) as client:
        dispatcher = PushDispatcher(
            store,
            hub,
            senders_from(settings, client),
            clock=clock,
            queue_size=settings.push_queue_size,
            retries=settings.push_retries,
            backoff=settings.push_backoff,
        )
        await dispatcher.serve(task_status=task_status)
