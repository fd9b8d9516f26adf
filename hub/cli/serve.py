"""`orderhook init | serve | demo`: write a config, run the hub, run it with demo traffic."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from importlib.resources import files
from pathlib import Path
from typing import Any

import click
import uvicorn

from hub.app import create_app
from hub.auth import issue_token
from hub.cli.options import config_options, load_settings
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import Store

EXAMPLE = files("hub").joinpath("example.toml")


def example_config(*, fresh_secret: bool) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    if fresh_secret:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        text = text.replace(
            "whsec_ZGVtby1zaG9wLXNlY3JldC1mb3Itb3JkZXJob29rLWRlbW8=", secret
        ).replace('"orderhook-demo.db"', '"orderhook.db"')
    return text


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default="orderhook.toml")
def init(path: Path, force: bool) -> None:
    """Write a starter config (one Standard Webhooks shop with a fresh secret).

    \b
    Examples:
      orderhook init
      orderhook init /etc/orderhook/orderhook.toml
    """
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists (use --force to overwrite)")
    path.write_text(example_config(fresh_secret=True), encoding="utf-8")
    click.echo(f"wrote {path}; start the hub with: orderhook serve --config {path}")


def server_options(fn):  # type: ignore[no-untyped-def]
    fn = click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS key.")(
        fn
    )
    fn = click.option(
        "--certfile", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (HTTPS)."
    )(fn)
    fn = click.option(
        "--port", type=int, envvar="ORDERHOOK_PORT", help="Port (overrides hub.port)."
    )(fn)
    fn = click.option("--host", envvar="ORDERHOOK_HOST", help="Address (overrides hub.host).")(fn)
    return config_options(fn)


def uvicorn_config(
    settings: Settings, app: Any, certfile: str | None, keyfile: str | None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,  # every request is already recorded in the database
        log_level="info",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        timeout_graceful_shutdown=5,
    )


@click.command()
@server_options
def serve(
    config: Path,
    db: Path | None,
    host: str | None,
    port: int | None,
    certfile: str | None,
    keyfile: str | None,
) -> None:
    """Run the hub: webhooks, API and background stages in one process.

    \b
    Examples:
      orderhook serve
      orderhook serve --config /etc/orderhook/orderhook.toml --port 8600
      orderhook serve --certfile hub.pem --keyfile hub.key   # HTTPS
      ORDERHOOK_DB=/data/hub.db orderhook serve
    """
    if bool(certfile) != bool(keyfile):
        raise click.UsageError("--certfile and --keyfile go together")
    settings = load_settings(
        config, db, host=host, port=port, certfile=Path(certfile).absolute() if certfile else None
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    click.echo(f"orderhook: database {settings.db}; shops: {', '.join(settings.shops) or 'none'}")
    uvicorn.Server(uvicorn_config(settings, create_app(Hub(settings)), certfile, keyfile)).run()


@click.command()
@server_options
@click.option("--rate", type=float, default=2.0, show_default=True, help="Demo pushes per second.")
@click.option(
    "--count", type=int, default=0, help="Stop after this many pushes (0: run until Ctrl-C)."
)
def demo(
    config: Path,
    db: Path | None,
    host: str | None,
    port: int | None,
    certfile: str | None,
    keyfile: str | None,
    rate: float,
    count: int,
) -> None:
    """Run the hub with demo pushes flowing into it, and print where to look.

    Uses ./orderhook.toml when it exists, else the bundled example config (one
    Standard Webhooks shop, database ./orderhook-demo.db).

    \b
    Examples:
      orderhook demo
      orderhook demo --rate 20 --count 500
    """
    from sandbox import demo as demo_traffic

    if not config.exists() and config == Path("orderhook.toml"):
        config = Path("orderhook-demo.toml")
        config.write_text(example_config(fresh_secret=False), encoding="utf-8")
    settings = load_settings(
        config, db, host=host, port=port, certfile=Path(certfile).absolute() if certfile else None
    )
    token = Store(settings.db).run(issue_token, "demo-admin", "admin")
    scheme = "https" if certfile else "http"
    base = f"{scheme}://{settings.host}:{settings.port}"
    click.echo(
        f"""
orderhook demo: the hub is starting at {base}
  config      {config}
  database    {settings.db}
  webhooks    POST {base}/webhooks/<platform>/<shop>
  health      {base}/healthz
  metrics     curl -H "Authorization: Bearer {token}" {base}/metrics
  requests    curl -H "Authorization: Bearer {token}" {base}/api/requests?limit=5
  board       {base}/board?token={token}
  browse      orderhook browse --db {settings.db}
Stop with Ctrl-C.
"""
    )
    hub = Hub(settings)
    server = uvicorn.Server(uvicorn_config(settings, create_app(hub), certfile, keyfile))

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                return
            await asyncio.sleep(0.05)
        try:
            await demo_traffic.run(base, settings, rate=rate, count=count, echo=click.echo)
        finally:
            if count:
                server.should_exit = True
            await serving

    asyncio.run(main())


commands = [init, serve, demo]
