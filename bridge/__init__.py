"""Quart-Trio REST API beside the WebSocket gateway, and the domain services it shares
with the socket handlers (accounts, billing, files, chats, calls, notifications).

``bridge.app.create_app(BridgeServices(...))`` builds the app; hypercorn's trio
worker serves it in the node's nursery. This package's ``__init__`` imports
nothing, so that a socket handler importing a domain service
(``bridge.chats.chatlist``) does not load Quart and every route.
See ARCHITECTURE.md for the sub-packages and what may import what.
"""
