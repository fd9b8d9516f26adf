"""What recording costs on disk, measured on the ingest run's database after the hub
stopped (its WAL checkpointed into the file):

- bytes per recorded request: the whole file (requests, events, orders, every index)
  divided by the requests in it; extrapolated to a million pushes;
- the raw bytes those requests carried (body and headers), for comparison;
- each table and index from the dbstat virtual table: pages, bytes, and their share;
  an index's bytes per push is what it adds to every write (its write amplification);
- bytes the hub process actually wrote to storage per push (/proc/<pid>/io write_bytes):
  WAL frames, checkpoints and fsyncs included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import dbread
from hub.store import stats_sql


def measure(db: Path, io: dict[str, int]) -> dict[str, Any]:
    """`io`: the hub's /proc io counters over the run that filled `db`."""
    totals = dbread.read(db, stats_sql.ingest_totals)
    pushes_in_run = totals["requests"]
    raw = dbread.read(db, stats_sql.body_bytes)
    trees = dbread.read(db, stats_sql.btrees)
    size = dbread.file_bytes(db)
    requests = max(1, totals["requests"])
    per_request = size / requests
    tables = {t.name for t in trees if t.name == t.table}
    index_bytes = sum(t.bytes for t in trees if t.name not in tables)
    table_bytes = sum(t.bytes for t in trees if t.name in tables)
    return {
        "requests": totals["requests"],
        "events": totals["events"],
        "file_bytes": size,
        "bytes_per_request": round(per_request),
        "raw_bytes_per_request": round((raw["body"] + raw["headers"]) / requests),
        "gb_per_million_pushes": round(per_request * 1e6 / 1e9, 2),
        "index_bytes_per_table_byte": round(index_bytes / table_bytes, 3) if table_bytes else None,
        "btrees": [
            {
                "name": t.name,
                "table": t.table,
                "kind": "table" if t.name in tables else "index",
                "pages": t.pages,
                "bytes": t.bytes,
                "bytes_per_request": round(t.bytes / requests, 1),
                "share": round(t.bytes / size, 3) if size else 0,
            }
            for t in trees
            if t.bytes
        ],
        "disk_write_bytes_per_push": round(io.get("write_bytes", 0) / pushes_in_run)
        if pushes_in_run
        else None,
        "disk_write_amplification": round(
            io.get("write_bytes", 0) / pushes_in_run / max(1, per_request), 2
        )
        if pushes_in_run
        else None,
    }
