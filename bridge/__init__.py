"""Quart-Trio REST API beside the WebSocket gateway: auth, users, rooms, history.

``create_app(BridgeServices(...))`` builds the app; hypercorn's trio worker
serves it in the node's nursery.
"""

from __future__ import annotations

from bridge.app import create_app
from bridge.services import BridgeServices

__all__ = ["BridgeServices", "create_app"]
