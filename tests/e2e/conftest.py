"""End-to-end fixtures live in tests/conftest.py (shared by every feature's tests).

``NodeFactory`` is re-exported here for the type hints of older imports.
"""

from tests.conftest import NodeFactory

__all__ = ["NodeFactory"]
