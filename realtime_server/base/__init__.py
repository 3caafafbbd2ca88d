"""Foundation every package may import: settings, metrics, logs, the clock.

Imports nothing of ours but ``protocol``, so ``storage``, ``actors`` and ``bridge`` can
use it without importing the node (see ARCHITECTURE.md).
"""
