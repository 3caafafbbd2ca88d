"""``realtime-server``: serve, migrate, admin, bench."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

import trio

from realtime_server.base.logs import setup_logging
from realtime_server.base.settings import Settings, SettingsError, load_settings


def version() -> str:
    """The installed distribution's version (pyproject.toml), e.g. ``0.1.0``."""
    from importlib import metadata

    try:
        return metadata.version("realtime-server")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"


def _serve(settings: Settings, supervisor: int | None = None) -> None:
    """One node until SIGINT/SIGTERM. ``supervisor``: the pid of the process
    that started this one as a worker of ``serve --workers N``."""
    from realtime_server.node import open_node

    async def main() -> None:
        async with open_node(settings, reuse_port=supervisor is not None):
            _tune_gc()
            async with trio.open_nursery() as nursery:
                if settings.gc_collect_interval > 0:
                    nursery.start_soon(_collect_periodically, settings.gc_collect_interval)
                if supervisor is not None:
                    nursery.start_soon(_drain_when_orphaned, supervisor, nursery.cancel_scope)
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for sig in signals:
                        logging.getLogger("realtime_server").info(
                            "signal %s: shutting down (draining)", sig
                        )
                        break
                nursery.cancel_scope.cancel()
            # Leaving open_node drains: in-flight requests answered, then 1001.

    trio.run(main)


async def _drain_when_orphaned(supervisor: int, serving: trio.CancelScope) -> None:
    """A worker whose supervisor is gone (SIGKILL, crash) stops too, draining:
    nothing would stop or restart it any more, and it would hold the port."""
    while os.getppid() == supervisor:  # noqa: ASYNC110 - no event tells of a parent exit
        await trio.sleep(1.0)
    logging.getLogger("realtime_server").warning(
        "supervisor (pid %d) is gone: shutting down (draining)", supervisor
    )
    serving.cancel()


def _run_serve(settings: Settings, supervisor: int | None = None) -> int:
    """``_serve``, with a bad setting found while starting (REDIS_URL, ...) as
    exit code 2 and its message instead of a traceback: a supervisor does not
    restart a worker for that."""
    try:
        _serve(settings, supervisor)
    except SettingsError as exc:
        errors: Sequence[BaseException] = [exc]
    except BaseExceptionGroup as group:
        matched, rest = group.split(SettingsError)
        if matched is None or rest is not None:
            raise
        errors = _leaves(matched)
    else:
        return 0
    for error in errors:
        print(f"realtime-server: {error}", file=sys.stderr)
    return 2


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _workers_arg(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per core with REDIS_URL) or positive")
    return count


def _tune_gc() -> None:
    """Collect less often: a chat node holds many long-lived small objects.

    Room caches keep thousands of message structs alive; with CPython's default
    thresholds the full collections that keep re-scanning them took about 40%
    of the server's CPU in `bench rooms` (see README, Performance). Freezing
    what start-up created and raising the young-generation threshold keeps
    collection for what is actually short-lived.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


async def _collect_periodically(interval: float) -> None:
    """A full collection every ``interval`` seconds (GC_COLLECT_INTERVAL).

    With the thresholds above a full collection practically never happens on
    its own, so cyclic garbage that reached the oldest generation (objects of a
    connection or request that lived through two younger collections) was
    never freed: RSS grew by about 3.7 KB per connect-and-drop (issue 12,
    item 23). The gateway now breaks its per-connection cycles so sockets are
    freed by reference counting; this bounds whatever other libraries leave
    (hypercorn, Quart, trio tracebacks). One full pass over the unfrozen heap
    every minute costs a few milliseconds of a 60-second budget.
    """
    log = logging.getLogger("realtime_server")
    while True:
        await trio.sleep(interval)
        started = time.perf_counter()
        found = gc.collect()
        log.debug(
            "full GC: %d unreachable in %.1f ms", found, 1000 * (time.perf_counter() - started)
        )


def _migrate(settings: Settings) -> None:
    from storage.sql.factory import open_store

    async def main() -> None:
        async with open_store(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        ) as store:
            report = await store.migrate()
            for name in report.applied:
                print(f"applied {name}")
            print(f"{len(report.applied)} applied, {len(report.already)} already applied")

    trio.run(main)


def _admin(settings: Settings, action: str, email: str) -> int:
    """Grant or revoke the admin role (issue 15): the operator's only way, on
    purpose: no API request can make anyone an admin."""
    from storage.base import now_ms
    from storage.notifications import ADMIN, notification_store
    from storage.sql.factory import open_store

    async def main() -> int:
        async with open_store(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        ) as store:
            await store.migrate()
            roles = notification_store(store)
            user_id = await roles.user_id_by_email(email)
            if user_id is None:
                print(f"realtime-server: no user has the email {email!r}", file=sys.stderr)
                return 1
            if action == "grant":
                changed = await roles.grant(user_id, ADMIN, now_ms())
                print(f"{email} ({user_id}) is {'now' if changed else 'already'} an admin")
            else:
                changed = await roles.revoke(user_id, ADMIN)
                print(f"{email} ({user_id}) {'is no longer' if changed else 'was not'} an admin")
            return 0

    return trio.run(main)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="realtime-server", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the node (REST + WebSocket on one port)")
    serve.add_argument("--host", help="overrides HOST")
    serve.add_argument("--port", type=int, help="overrides PORT")
    serve.add_argument(
        "--workers",
        type=_workers_arg,
        help="overrides WORKERS: node processes sharing the port (needs REDIS_URL)",
    )
    sub.add_parser("migrate", help="apply pending SQL migrations and exit")
    admin = sub.add_parser("admin", help="grant or revoke the admin role")
    admin.add_argument("action", choices=("grant", "revoke"))
    admin.add_argument("email", help="the user's email address")
    bench = sub.add_parser("bench", help="drive a server with the load harness")
    words = sys.argv[1:] if argv is None else argv
    if "bench" in words:
        # The harness (and the clients it loads) costs ~0.3 s of imports:
        # only `bench` pays for it, not every `serve` start.
        from protocol.harness.__main__ import add_arguments

        add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from protocol.harness.__main__ import run

        run(args)
        return 0
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"realtime-server: {exc}", file=sys.stderr)
        return 2
    if args.command == "admin":
        # A one-shot tool that prints what it did: it leaves the process's
        # logging as it found it.
        return _admin(settings, args.action, args.email)
    setup_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        given = (("host", args.host), ("port", args.port), ("workers", args.workers))
        settings = settings.replace(**{k: v for k, v in given if v is not None})
        from realtime_server.cluster.workers import SUPERVISOR_ENV, supervise, worker_count

        if supervisor := os.environ.get(SUPERVISOR_ENV):
            return _run_serve(settings, int(supervisor))
        if (count := worker_count(settings)) > 1:
            return supervise(settings, count)
        return _run_serve(settings)
    elif args.command == "migrate":
        _migrate(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
