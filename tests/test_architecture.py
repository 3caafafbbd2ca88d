"""The import rules of ARCHITECTURE.md, checked on the source of every module.

Every ``import`` counts: at the top of a module, inside a function, under
``if TYPE_CHECKING:``. A broken rule fails with the module, the line and the
import, so the message says what to move.

Layers, each importing only itself and the layers before it::

    protocol                  nothing of ours
    realtime_server.base      protocol
    storage                   protocol, realtime_server.base
    actors                    protocol, realtime_server.base, storage
    bridge                    protocol, realtime_server.base, storage, actors
    realtime_server (the rest) anything: the node composes everything

Inside ``bridge``: the domain services (accounts, billing, files, chats,
calls, notifications) know nothing of HTTP, because the socket handlers use
them too; the HTTP plumbing knows no route; only ``bridge.app`` reaches the
routes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "realtime_server", "storage", "actors", "bridge")

# Layer name -> the layers it may import (itself included).
LAYERS: dict[str, frozenset[str]] = {
    "protocol": frozenset({"protocol"}),
    "base": frozenset({"protocol", "base"}),
    "storage": frozenset({"protocol", "base", "storage"}),
    "actors": frozenset({"protocol", "base", "storage", "actors"}),
    "bridge": frozenset({"protocol", "base", "storage", "actors", "bridge"}),
    "node": frozenset({"protocol", "base", "storage", "actors", "bridge", "node"}),
}
LAYER_NAMES = {
    "protocol": "protocol",
    "base": "realtime_server.base",
    "storage": "storage",
    "actors": "actors",
    "bridge": "bridge",
    "node": "realtime_server",
}
DOMAINS = tuple(
    f"bridge.{name}" for name in ("accounts", "billing", "files", "chats", "calls", "notifications")
)
HTTP_LIBRARIES = ("quart", "quart_trio", "werkzeug", "hypercorn")
IO_LIBRARIES = ("trio", "trio_websocket", "trio_asyncio", "wsproto", "asyncpg", "sqlite3")


@dataclass(frozen=True)
class Import:
    module: str  # the module whose source has the import
    target: str  # the module it imports, absolute
    line: int

    def __str__(self) -> str:
        path = module_path(self.module).relative_to(ROOT)
        return f"{self.module} ({path}:{self.line}) imports {self.target}"


def module_path(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return (base / "__init__.py").is_file() or base.with_suffix(".py").is_file()


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@cache
def modules() -> tuple[str, ...]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append(".".join(parts))
    return tuple(found)


def imports_in(module: str, source: str) -> Iterator[Import]:
    """Every import in ``source`` (all nesting levels), made absolute."""
    is_package = module_path(module).name == "__init__.py"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from realtime_server.base import metrics`` imports the module
                # realtime_server.base.metrics, not just the package.
                named = f"{target}.{alias.name}"
                yield Import(module, named if is_module(named) else target, node.lineno)


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(
        imp for module in modules() for imp in imports_in(module, module_path(module).read_text())
    )


def ours(imports: Iterable[Import]) -> Iterator[Import]:
    return (imp for imp in imports if imp.target.split(".")[0] in PACKAGES)


def layer_of(module: str) -> str:
    # The package realtime_server itself runs whenever realtime_server.base is
    # imported, so it belongs to the foundation and must stay empty.
    if module == "realtime_server" or within(module, "realtime_server.base"):
        return "base"
    top = module.split(".")[0]
    return "node" if top == "realtime_server" else top


def reached_from(start: Iterable[str]) -> set[str]:
    """``start`` and every module of ours it imports, directly or not."""
    reached: set[str] = set()
    todo = list(start)
    while todo:
        module = todo.pop()
        if module in reached or module not in modules():
            continue
        reached.add(module)
        todo.extend(imp.target for imp in ours(all_imports()) if imp.module == module)
    return reached


def failures(broken: Iterable[Import], rule: str) -> str:
    lines = sorted({str(imp) for imp in broken})
    return f"{rule}:\n  " + "\n  ".join(lines) if lines else ""


# ----- the checker itself ---------------------------------------------------------


def test_the_checker_sees_imports_inside_functions_and_type_checking_blocks() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from realtime_server.node import Node\n"
        "def late() -> None:\n"
        "    from realtime_server.base import settings\n"
        "    import storage.sql.writer\n"
        "from . import routing\n"
    )
    found = {(imp.target, imp.line) for imp in ours(imports_in("bridge.http.cors", source))}
    assert found == {
        ("realtime_server.node", 3),
        ("realtime_server.base.settings", 5),
        ("storage.sql.writer", 6),
        ("bridge.http.routing", 7),
    }


def test_every_package_is_seen() -> None:
    seen = {module.split(".")[0] for module in modules()}
    assert seen == set(PACKAGES)
    assert "bridge.routes.ai" in modules() and "storage.sql.writer" in modules()


# ----- layers ------------------------------------------------------------------------


def test_each_layer_imports_only_itself_and_the_layers_before_it() -> None:
    broken = [
        imp
        for imp in ours(all_imports())
        if layer_of(imp.target) not in LAYERS[layer_of(imp.module)]
    ]
    allowed = {
        LAYER_NAMES[layer]: ", ".join(LAYER_NAMES[other] for other in sorted(LAYERS[layer]))
        for layer in LAYERS
    }
    assert not broken, failures(
        broken, f"imports across the layers (allowed, per layer: {allowed})"
    )


def test_the_realtime_server_package_itself_imports_nothing() -> None:
    # Importing realtime_server.base runs realtime_server/__init__.py first.
    broken = [imp for imp in all_imports() if imp.module == "realtime_server"]
    assert not broken, failures(broken, "realtime_server/__init__.py must import nothing")


def test_storage_sql_machinery_stays_under_storage() -> None:
    broken = [
        imp
        for imp in all_imports()
        if imp.target.split(".")[0] in ("asyncpg", "sqlite3", "trio_asyncio")
        and not within(imp.module, "storage")
        and not within(imp.module, "protocol.harness")  # the load harness resets a test database
    ]
    assert not broken, failures(broken, "only storage talks to a database driver")


# ----- inside bridge -----------------------------------------------------------------


def test_routes_are_reached_only_through_the_app() -> None:
    broken = [
        imp
        for imp in ours(all_imports())
        if within(imp.target, "bridge.routes")
        and imp.module != "bridge.app"
        and not within(imp.module, "bridge.routes")
    ]
    assert not broken, failures(broken, "only bridge.app imports a route module")


def test_domain_services_know_no_http_and_no_routes() -> None:
    # The socket handlers (realtime_server.handlers_*) use these services too.
    # (bridge.services, the bundle they are built from, holds no HTTP: the
    # transitive test below keeps it so.)
    forbidden = ("bridge.routes", "bridge.http", "bridge.app", *HTTP_LIBRARIES)
    broken = [
        imp
        for imp in all_imports()
        if any(within(imp.module, domain) for domain in DOMAINS)
        and any(within(imp.target, name) for name in forbidden)
    ]
    assert not broken, failures(broken, "domain services must not import HTTP, routes or the app")


def test_domain_services_load_no_http_library_even_indirectly() -> None:
    domain_modules = [m for m in modules() if any(within(m, domain) for domain in DOMAINS)]
    reached = reached_from(domain_modules)
    broken = [
        imp
        for imp in all_imports()
        if imp.module in reached and imp.target.split(".")[0] in HTTP_LIBRARIES
    ]
    assert not broken, failures(
        broken, "a module the domain services import (directly or not) imports HTTP"
    )


def test_http_plumbing_knows_no_route() -> None:
    broken = [
        imp
        for imp in ours(all_imports())
        if within(imp.module, "bridge.http")
        and (within(imp.target, "bridge.routes") or imp.target == "bridge.app")
    ]
    assert not broken, failures(broken, "bridge.http must not import routes or the app")


# ----- protocol ----------------------------------------------------------------------


def frame_and_codec_modules() -> list[str]:
    return [m for m in modules() if m.startswith("protocol.frames") or m == "protocol.codec"]


def test_frames_and_codec_import_no_trio_and_no_storage() -> None:
    """Sans-I/O: every module they reach, directly or not, imports no I/O."""
    reached = reached_from(frame_and_codec_modules())
    assert "protocol.frames_ai" in reached and "protocol.codec" in reached
    broken = [
        imp
        for imp in all_imports()
        if imp.module in reached
        and (
            imp.target.split(".")[0] in IO_LIBRARIES
            or imp.target.split(".")[0] in ("storage", "actors", "bridge", "realtime_server")
        )
    ]
    assert not broken, failures(broken, "frames and codec must stay sans-I/O")


def test_frame_modules_do_not_import_each_other_in_a_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in frame_and_codec_modules()}
    for imp in all_imports():
        if imp.module in graph and imp.target in graph:
            graph[imp.module].add(imp.target)
    cycles = []
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            module = todo.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
    assert not cycles, f"frame modules in an import cycle: {sorted(cycles)}"
