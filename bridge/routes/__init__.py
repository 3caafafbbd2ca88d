"""REST routes, one module per resource, and their request and response bodies.

Each module has ``add_routes(router, services)``; ``bridge.app`` calls them all.
Nothing but ``bridge.app`` imports a route module.
"""
