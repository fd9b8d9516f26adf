"""`python -m bench.serve KIND --port N [--config FILE | --db FILE]`: the servers compared.

All run under exactly the same uvicorn settings (uvloop, httptools, one worker, no
access log), so the ratio hub/bare is what the hub's own work costs: verify, record,
dedupe, group commit, ack. `raw`, `durable`, `lean` and `lean-split` are the ceiling's
rungs (bench/rungs.py, bench/ceiling.py): what a server that does no more than part of
that work, or all of it and nothing else, reaches on this machine.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench import rungs
from bench.pushes import BENCH_SECRET

UVICORN_SETTINGS = {
    "loop": "uvloop",
    "http": "httptools",
    "workers": 1,
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
}

OK = rungs.OK


async def bare_endpoint(request: Request) -> Response:
    """The framework's ceiling: read the body, answer 200, nothing else."""
    await request.body()
    return Response(OK, media_type="application/json")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", bare_endpoint, methods=["GET", "POST"])])


def hub_app(config: str) -> object:
    from hub import settings as settings_mod
    from hub.app import create_app
    from hub.runtime import Hub

    return create_app(Hub(settings_mod.load(config)))


# each kind: the option it needs, if any, and how its app is made from the arguments
KINDS: dict[str, tuple[str | None, Callable[[argparse.Namespace], object]]] = {
    "hub": ("config", lambda a: hub_app(a.config)),
    "bare": (None, lambda a: bare_app()),
    "raw": (None, lambda a: rungs.raw_app),
    "durable": ("db", lambda a: rungs.group_commit(rungs.BodyTable(a.db))),
    "lean": ("db", lambda a: rungs.group_commit(rungs.LeanTables(a.db, BENCH_SECRET))),
    "lean-split": (
        "db",
        lambda a: rungs.group_commit_in_worker(rungs.LeanTables, a.db, BENCH_SECRET),
    ),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", help="the hub's TOML config (hub only)")
    parser.add_argument("--db", help="the database file (durable, lean, lean-split)")
    args = parser.parse_args(argv)
    needs, make = KINDS[args.kind]
    if needs and not getattr(args, needs):
        parser.error(f"{args.kind} needs --{needs}")
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(make(args), host="127.0.0.1", port=args.port, **UVICORN_SETTINGS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
