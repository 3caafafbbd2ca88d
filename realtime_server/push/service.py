"""The node's push service: providers from the settings, one dispatcher, one task."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from realtime_server.base.settings import Settings
from storage.base import Store

from .dispatcher import PushDispatcher, Sender

if TYPE_CHECKING:
    import httpx


def senders_from(settings: Settings, client: httpx.AsyncClient) -> dict[str, Sender]:
    """The providers this node is configured for (none: pushes are off)."""
    # Imported here: a node without push providers never loads them or httpx.
    from .apns import ApnsSender
    from .fcm import FcmSender, ServiceAccount

    found: dict[str, Sender] = {}
    if settings.fcm_service_account:
        account = ServiceAccount.load(settings.fcm_service_account)
        found["fcm"] = FcmSender(client, account, base_url=settings.fcm_url)
    if settings.apns_key_file:
        found["apns"] = ApnsSender.from_key_file(
            client,
            settings.apns_key_file,
            key_id=settings.apns_key_id,
            team_id=settings.apns_team_id,
            base_url=settings.apns_url,
        )
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
    options: dict[str, Any] = dict(
        clock=clock,
        queue_size=settings.push_queue_size,
        retries=settings.push_retries,
        backoff=settings.push_backoff,
    )
    if not (settings.fcm_service_account or settings.apns_key_file):
        # Pushes are off: the dispatcher drops what the rooms offer, and no
        # HTTP client (nor httpx) is loaded for nothing.
        await PushDispatcher(store, hub, {}, **options).serve(task_status=task_status)
        return
    import httpx

    # HTTP/2 only: APNs speaks nothing else (ALPN h2 over TLS; prior
    # knowledge on a cleartext test endpoint); Google's endpoints speak it too.
    async with httpx.AsyncClient(timeout=settings.push_timeout, http1=False, http2=True) as client:
        dispatcher = PushDispatcher(store, hub, senders_from(settings, client), **options)
        await dispatcher.serve(task_status=task_status)
