"""A bare broadcaster for harness tests: every binary message goes to every other connection.

The shape of the peers the ``plain`` scenario measures beside the project
(``../shared/peers``), small enough to live here: trio and wsproto, no storage.
"""

from __future__ import annotations

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request

from realtime_server.wsframes import binary_frame


async def serve_raw_broadcaster(
    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    streams: set[trio.SocketStream] = set()

    async def handle(stream: trio.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        try:
            while data := await stream.receive_some(65536):
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        await stream.send_all(ws.send(AcceptConnection()))
                        streams.add(stream)
                    elif isinstance(event, BytesMessage):
                        frame = binary_frame(bytes(event.data))
                        for other in list(streams - {stream}):
                            await other.send_all(frame)
                    elif isinstance(event, CloseConnection):
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            streams.discard(stream)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)
