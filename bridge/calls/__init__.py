"""Calls' services outside the call actor: ICE servers and TURN credentials."""
