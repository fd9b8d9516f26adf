"""`orderhook replay | export | import | browse`: recorded requests as evidence.

Exit codes (documented in docs/sandbox.md; scripts rely on them):
  0  done, every replayed answer matched the original
  1  done, but some answers differ or some requests got no answer
  2  usage error (bad option, unreadable file)
  3  the selection is empty: nothing to do
  130 interrupted (Ctrl-C); the run can be resumed
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import click

from hub.cli.options import config_options, load_settings
from hub.model import iso_utc, parse_iso
from hub.settings import Settings
from hub.store import Store, sandbox_sql
from hub.store.sandbox_sql import RequestFilter
from sandbox import recordings
from sandbox import replay as replaying

EXIT_DIFFERENT = 1
EXIT_EMPTY = 3
EXIT_INTERRUPTED = 130


def open_settings(config: Path, db: Path | None) -> Settings:
    """The config's settings; with only --db (no config file), just that database."""
    if db is not None and not config.exists():
        return Settings(db=db.absolute())
    return load_settings(config, db)


def _when(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return iso_utc(parse_iso(value))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time") from None


def filter_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.option("--platform", help="Only this platform."),
            click.option("--shop", help="Only this shop."),
            click.option(
                "--outcome",
                type=click.Choice(["accepted", "duplicate", "rejected", "error", "imported"]),
                help="Only requests with this outcome.",
            ),
            click.option("--since", help="Received at or after this time (ISO 8601, UTC)."),
            click.option("--until", help="Received before this time (ISO 8601, UTC)."),
            click.option("--limit", type=click.IntRange(min=1), help="At most this many."),
        )
    ):
        fn = option(fn)
    return fn


def make_filter(ids: tuple[int, ...], **kw: Any) -> RequestFilter:
    return RequestFilter(
        ids=ids,
        platform=kw.get("platform"),
        shop=kw.get("shop"),
        outcome=kw.get("outcome"),
        since=_when(kw.get("since")),
        until=_when(kw.get("until")),
        limit=kw.get("limit"),
    )


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# --- replay ------------------------------------------------------------------------------


@click.command()
@click.argument("ids", nargs=-1, type=int)
@click.option(
    "--file",
    "-f",
    "files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Recording files or folders of them (repeatable) instead of the database.",
)
@filter_options
@click.option("--to", "target", help="Base URL to send to (default: the hub in the config).")
@click.option(
    "--exact-url", is_flag=True, help="Send to --to as given; do not append the recorded path."
)
@click.option("--resign", is_flag=True, help="Re-sign with a fresh timestamp (shop's secret).")
@click.option("--secret", help="Re-sign with this secret (implies --resign).")
@click.option("--dry-run", is_flag=True, help="Only say how many requests would be sent.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=replaying.DEFAULT_CONCURRENCY,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option("--rate", type=click.FloatRange(min=0.01), help="At most this many per second.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per request.")
@click.option("--resume", "resume_id", type=int, help="Finish an interrupted run (its id).")
@click.option("--verbose", "-v", is_flag=True, help="Print every answer, not only differences.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for scripts.")
@config_options
def replay(
    ids: tuple[int, ...],
    files: tuple[Path, ...],
    target: str | None,
    exact_url: bool,
    resign: bool,
    secret: str | None,
    dry_run: bool,
    concurrency: int,
    rate: float | None,
    timeout: float,
    resume_id: int | None,
    verbose: bool,
    as_json: bool,
    config: Path,
    db: Path | None,
    **filters: Any,
) -> None:
    """Re-send recorded requests and compare each answer with the original one.

    \b
    Examples:
      orderhook replay 17 18                     # by id, to the hub itself
      orderhook replay --outcome rejected --since 2026-11-11T00:00:00Z --dry-run
      orderhook replay --platform standard --to http://127.0.0.1:9000 --rate 50
      orderhook replay -f recordings/ --to https://staging.example.com --resign
      orderhook replay 17 --secret whsec_... --to http://localhost:3000/hook --exact-url
      orderhook replay --resume 4                # finish an interrupted run
    \b
    Exit codes: 0 all answers matched, 1 some differ or failed, 3 nothing selected,
    130 interrupted (resume with --resume RUN).
    """
    settings = open_settings(config, db)
    store = Store(settings.db)
    flt = make_filter(ids, **filters)
    if resume_id is not None:
        run_row = store.run_read(sandbox_sql.get_run, resume_id)
        if run_row is None:
            raise click.BadParameter(f"no replay run {resume_id}", param_hint="--resume")
        sel = run_row["selection"]
        if sel.get("files"):
            items = replaying.from_files(Path(p) for p in sel["files"])
        else:  # exactly the requests first selected, not what the filter matches now
            items = replaying.from_store(store, RequestFilter(ids=tuple(sel["request_ids"])))
        done = store.run_read(sandbox_sql.answered_items, resume_id)
        items = [i for i in items if i.key not in done]
        target, exact_url = run_row["target"], not run_row["keep_path"]
        resign = resign or run_row["mode"] == "resign"
        run_id = resume_id
    else:
        try:
            items = replaying.from_files(files) if files else replaying.from_store(store, flt)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        run_id = 0
    target = target or f"http://{settings.host}:{settings.port}"
    plan = replaying.Plan(
        target=target,
        keep_path=not exact_url,
        resign=resign or bool(secret),
        secret=secret,
        settings=settings,
    )
    if dry_run or not items:
        summary = {"selected": len(items), "target": target, "mode": _mode(plan)}
        if as_json:
            emit_json(summary)
        else:
            click.echo(f"{len(items)} request(s) selected; would send to {target} ({_mode(plan)})")
        if not items:
            sys.exit(EXIT_EMPTY)
        return
    if not run_id:
        selection: dict[str, Any] = (
            {"files": [str(p) for p in files]}
            if files
            else {"filter": flt.as_json(), "request_ids": [i.request_id for i in items]}
        )
        run_id = store.run(
            lambda conn: sandbox_sql.create_run(
                conn,
                target=target,
                keep_path=plan.keep_path,
                mode=_mode(plan),
                selection=selection,
                total=len(items),
            )
        )
    outcomes, interrupted = _run_replay(
        store,
        run_id,
        items,
        plan,
        concurrency,
        rate,
        timeout,
        verbose=verbose and not as_json,
        quiet=as_json,
    )
    differing = [o for o in outcomes if not o.same]
    if as_json:
        emit_json(
            {
                "run_id": run_id,
                "selected": len(items),
                "sent": len(outcomes),
                "same": len(outcomes) - len(differing),
                "different": sum(1 for o in differing if o.status is not None),
                "failed": sum(1 for o in differing if o.status is None),
                "interrupted": interrupted,
                "results": [o.as_json() for o in outcomes],
            }
        )
    else:
        click.echo(
            f"run {run_id}: {len(outcomes)} sent, {len(outcomes) - len(differing)} same, "
            f"{len(differing)} different or failed"
        )
    if interrupted:
        click.echo(f"interrupted; resume with: orderhook replay --resume {run_id}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if differing:
        sys.exit(EXIT_DIFFERENT)


def _mode(plan: replaying.Plan) -> str:
    return "resign" if plan.resign else "exact"


def _describe(outcome: replaying.Outcome) -> str:
    original = (outcome.item.recording.get("response") or {}).get("status")
    rec = outcome.item.recording
    head = f"{outcome.item.key}  {rec['method']} {rec['path']}  {original} -> "
    if outcome.status is None:
        return head + f"no answer: {outcome.error}"
    verdict = "same" if outcome.same else "DIFFERENT"
    return head + f"{outcome.status}  {verdict}"


def _run_replay(
    store: Store,
    run_id: int,
    items: list[replaying.Item],
    plan: replaying.Plan,
    concurrency: int,
    rate: float | None,
    timeout: float,
    *,
    verbose: bool,
    quiet: bool,
) -> tuple[list[replaying.Outcome], bool]:
    """Send, storing the answers as they come; returns (outcomes, interrupted)."""
    outcomes: list[replaying.Outcome] = []
    log = replaying.ResultLog(store, run_id)

    async def main() -> None:
        with Progress(len(items), f"replay run {run_id}") as progress:

            def record(outcome: replaying.Outcome) -> None:
                log.add(outcome)
                outcomes.append(outcome)
                progress.advance()
                if not quiet and (verbose or not outcome.same):
                    click.echo("\n" + _describe(outcome))
                    if outcome.diff:
                        click.echo(outcome.diff)

            await replaying.run(
                items,
                plan,
                concurrency=concurrency,
                rate=rate,
                timeout=timeout,
                on_outcome=record,
            )
        await log.close("done")

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        log.finish("interrupted")  # what was answered is kept: --resume skips it
        return outcomes, True
    return outcomes, False


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (uvicorn[standard] brings it): 25-40 % less CPU a
    replayed request than asyncio's own loop when measured; asyncio's elsewhere."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Progress:
    """click's progress bar, redrawn at most ten times a second: drawing it for every
    answer of a fast run costs more than the answers."""

    def __init__(self, length: int, label: str) -> None:
        self._bar = click.progressbar(length=length, label=label, file=sys.stderr)
        self._steps = 0
        self._drawn_at = 0.0

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._draw()
        self._bar.__exit__(exc_type, exc, tb)

    def advance(self) -> None:
        self._steps += 1
        now = time.monotonic()
        if now - self._drawn_at >= 0.1:
            self._draw()
            self._drawn_at = now

    def _draw(self) -> None:
        if self._steps:
            self._bar.update(self._steps)
            self._steps = 0


# --- export / import ---------------------------------------------------------------------


@click.command("export")
@click.argument("ids", nargs=-1, type=int)
@filter_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("recordings"),
    show_default=True,
    help="Folder for the recording files.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@config_options
def export(
    ids: tuple[int, ...],
    out_dir: Path,
    as_json: bool,
    config: Path,
    db: Path | None,
    **filters: Any,
) -> None:
    """Write recorded requests as recording files (one JSON per request).

    \b
    Examples:
      orderhook export 17                        # -> recordings/000017-standard-rejected.json
      orderhook export --outcome rejected --since 2026-11-11T00:00:00Z --out bug-1234/
    \b
    Exit codes: 0 written, 3 nothing selected.
    """
    store = Store(open_settings(config, db).db)
    rows = store.run_read(sandbox_sql.select_requests, make_filter(ids, **filters))
    if not rows:
        click.echo("no request matches", err=True)
        sys.exit(EXIT_EMPTY)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with click.progressbar(rows, label="export", file=sys.stderr) as bar:
        for row in bar:
            name = f"{row['id']:06d}-{row['platform'] or 'unknown'}-{row['outcome']}.json"
            recordings.dump(recordings.from_row(row), out_dir / name)
            written.append(str(out_dir / name))
    if as_json:
        emit_json({"written": written})
    else:
        click.echo(f"wrote {len(written)} recording(s) to {out_dir}")


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the new request ids as JSON.")
@config_options
def import_(paths: tuple[Path, ...], as_json: bool, config: Path, db: Path | None) -> None:
    """Load recording files into the database (as requests with source 'import').

    \b
    Examples:
      orderhook import bug-1234/000017-standard-rejected.json
      orderhook import recordings/ && orderhook replay --outcome rejected --dry-run
    \b
    Exit codes: 0 imported, 2 a file is not a recording (nothing imported).
    """
    store = Store(open_settings(config, db).db)
    try:
        loaded = [(p, recordings.load(p)) for p in replaying.recording_files(paths)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    def insert_all(conn: Any) -> list[int]:
        new_ids = []
        for _path, rec in loaded:
            response = rec.get("response") or {}
            response_body = recordings.decode_body(
                response.get("body") or "", response.get("body_encoding") or "utf-8"
            )
            new_ids.append(
                sandbox_sql.insert_recording(conn, rec, recordings.body_bytes(rec), response_body)
            )
        return new_ids

    new_ids = store.run(insert_all)  # one transaction: all files or none
    if as_json:
        emit_json({"imported": dict(zip(map(str, (p for p, _ in loaded)), new_ids, strict=True))})
    else:
        for (path, _rec), new_id in zip(loaded, new_ids, strict=True):
            click.echo(f"{path} -> request {new_id}")


# --- browse ------------------------------------------------------------------------------


@click.command()
@click.option("--port", type=int, default=8601, show_default=True, help="Datasette's port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@click.option("--get", "get_path", help="Print this one page (e.g. /hub.json) and exit.")
@config_options
def browse(
    port: int, host: str, no_open: bool, get_path: str | None, config: Path, db: Path | None
) -> None:
    """Open Datasette on the hub's database: every request, event and replay, browsable.

    \b
    Examples:
      orderhook browse
      orderhook browse --port 9001 --no-open
      orderhook browse --get /orderhook/failed_verifications.json   # one-shot, for scripts
    \b
    Exit codes: 0 served (or --get answered 200), 1 --get answered another status.
    """
    from sandbox import browse as browsing

    settings = open_settings(config, db)
    Store(settings.db).migrate()
    ds = browsing.build(settings.db)
    if get_path:
        response = asyncio.run(ds.client.get(get_path))
        click.echo(response.text)
        sys.exit(0 if response.status_code == 200 else 1)
    import uvicorn

    url = f"http://{host}:{port}/{settings.db.stem}"
    click.echo(f"Datasette on {settings.db} at {url} (Ctrl-C to stop)")
    if not no_open:
        webbrowser.open(url)
    uvicorn.run(ds.app(), host=host, port=port, log_level="warning")


commands = [replay, export, import_, browse]
