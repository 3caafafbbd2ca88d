"""Uploaded files: the type from the bytes, thumbnails, avatars, the text of
documents for AI projects.
"""
