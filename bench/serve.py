"""`python -m bench.serve {hub|bare} --port N [--config FILE]`: the two servers compared.

Both run under exactly the same uvicorn settings (uvloop, httptools, one worker, no
access log), so the ratio hub/bare is what the hub's own work costs: verify, record,
dedupe, group commit, ack.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UVICORN_SETTINGS = {
    "loop": "uvloop",
    "http": "httptools",
    "workers": 1,
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
}

OK = b'{"ok":true}'


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.add_argument("kind", choices=("hub", "bare"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", help="the hub's TOML config (hub only)")
    args = parser.parse_args(argv)
    if args.kind == "hub" and not args.config:
        parser.error("hub needs --config")
    logging.basicConfig(level=logging.WARNING)
    app = hub_app(args.config) if args.kind == "hub" else bare_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, **UVICORN_SETTINGS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
