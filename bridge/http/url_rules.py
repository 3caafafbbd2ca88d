"""URL rules whose URL builders are compiled once per process, not once per app.

Werkzeug compiles two URL-builder functions for every rule it binds (an AST
built, then ``compile()``): about 1 ms a rule, so 0.15 s of CPU for each
``create_app`` with our 130 routes, paid again by every node a process starts
(the test suite starts hundreds). A builder is a pure function of the rule's
parsed parts; it reads everything else through the ``self`` it is bound to
(the rule's converters, the map's charset). So rules with the same parts can
share one compiled function, each bound to its own rule: nothing mutable is
shared between apps. Rules with defaults are compiled as usual, because a
default is resolved through the rule's own converter at compile time.
"""

from __future__ import annotations

from collections.abc import Callable

from quart.routing import QuartRule

_Builder = Callable[..., tuple[str, str]]
_builders: dict[tuple[str, tuple[tuple[bool, str], ...], bool], _Builder] = {}


class SharedBuilderRule(QuartRule):
    """A ``QuartRule`` that reuses the compiled builder of an identical rule."""

    def _compile_builder(self, append_unknown: bool = True) -> _Builder:
        if self.defaults:
            return super()._compile_builder(append_unknown)
        key = (self.rule, tuple(self._trace), append_unknown)
        builder = _builders.get(key)
        if builder is None:
            # Unbound: compile() binds it to this rule with ``__get__``.
            builder = _builders[key] = super()._compile_builder(append_unknown)
        return builder
