"""Accounts: tokens, passwords, one-time codes, phones, OIDC sign-in, onboarding,
and the mail and SMS senders they use; rate limits on all of it.

Domain services: used by the REST routes and by the socket handlers alike, so
nothing here imports ``bridge.routes`` or ``bridge.http``.
"""
