"""The realtime messaging node: settings, CLI, wiring, the WebSocket gateway."""
