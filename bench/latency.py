"""Latency at fixed rates: ack time, and time from push to order and to assignment.

An open-loop generator sends pushes at 500 and 2,000 per second (each at its scheduled
time, whatever the hub is doing) and measures every ack from that scheduled time. Each
push is a new paid order and the hub has a dispatch group whose operators take every
task, so after the run each order tells when the post-commit stages got to it:
`orders.created_at` (the order stage applied the event) and `tasks.assigned_at`
(dispatch assigned it to an operator). Every push answered 200 must have its order:
that is the per-message durability check.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import dbread, loadgen, pushes
from bench.servers import Server, hub_config
from hub.model import parse_iso
from hub.store import stats_sql

SETTLE_SECONDS = 30.0  # how long the order stage may take to catch up after a run


def ms(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v * 1000, 2) for k, v in values.items()}


def run(
    work: Path, rates: list[int], seconds: float, echo: Callable[[str], None]
) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    hub = Server("hub", hub_config(work, "latency", dispatch=True)).start(work)
    db = work / "latency.db"
    results = []
    try:
        for rate in rates:
            batch = pushes.make(max(1, int(rate * seconds)), f"lat{rate}", kind="order.paid")
            raws = [p.raw for p in batch]
            cpu = time.process_time()
            outcomes = loadgen.run_on_uvloop(
                functools.partial(loadgen.open_loop, hub.url, raws, rate=rate)
            )
            generator_cpu = time.process_time() - cpu
            results.append(_measure(db, rate, batch, outcomes, generator_cpu))
            r = results[-1]
            echo(
                f"  {rate:5d}/s  ack p50 {r['ack_ms']['p50']:6.1f}  p99 {r['ack_ms']['p99']:6.1f}"
                f"  max {r['ack_ms']['max']:6.1f} ms   push->assigned p50 "
                f"{r['to_assignment_ms']['p50']:6.1f}  p99 {r['to_assignment_ms']['p99']:6.1f} ms"
            )
    finally:
        hub.stop()
    return {"rates": results, "db": str(db)}


def _measure(
    db: Path,
    rate: int,
    batch: list[pushes.Push],
    outcomes: list[loadgen.Outcome],
    generator_cpu: float,
) -> dict[str, Any]:
    acked = [(p, o) for p, o in zip(batch, outcomes, strict=True) if o.status == 200]
    wanted = [p.order_id for p, _ in acked]
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:  # the post-commit stages run after the ack: give them time to catch up
        times = dbread.read(db, stats_sql.order_times, "standard", pushes.SHOP, wanted)
        done = [t for t in times.values() if t[1]]
        if len(done) >= len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    def since_push(column: int) -> list[float]:
        return [
            parse_iso(stamp).timestamp() - o.scheduled
            for p, o in acked
            if (stamp := times.get(p.order_id, (None, None))[column])
        ]

    to_order, to_assignment = since_push(0), since_push(1)
    lags = [o.lag for o in outcomes if o.status is not None]
    span = outcomes[-1].scheduled - outcomes[0].scheduled if len(outcomes) > 1 else 0.0
    return {
        "rate": rate,
        "pushes": len(batch),
        "acked": len(acked),
        "errors": _count(o.error for o in outcomes if o.error),
        "statuses": _count(o.status for o in outcomes),
        "ack_ms": ms(loadgen.percentiles([o.latency for _, o in acked if o.latency is not None])),
        "to_order_ms": ms(loadgen.percentiles(to_order)),
        "to_assignment_ms": ms(loadgen.percentiles(to_assignment)),
        "acked_without_order": len(wanted) - len(to_order),
        "acked_not_assigned": len(wanted) - len(to_assignment),
        "generator_send_lag_ms": ms(loadgen.percentiles(lags)),
        "generator_cpu_share": round(generator_cpu / span, 3) if span else None,
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        key = str(v)
        out[key] = out.get(key, 0) + 1
    return out
