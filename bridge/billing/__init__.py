"""Billing: plans, quotas, subscription rules, the Stripe and Konnect gateways,
and ``service`` that ties them together.

Domain services: they answer domain records, never REST bodies (the routes
turn them into ``bridge.routes.schemas_billing``).
"""
