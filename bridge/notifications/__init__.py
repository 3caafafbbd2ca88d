"""Notifications: stored, then pushed to the users' online sessions."""
