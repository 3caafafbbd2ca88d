"""HTTP plumbing of the REST app: routing, CORS, security headers, request ids and
access log, the client's address, OpenAPI, the web app's static files.

Knows Quart and HTTP, nothing of any domain's rules.
"""
