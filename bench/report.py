"""The table `python -m bench` prints, from the results it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOAL = 0.8  # hub/bare, clean pushes: the benchmark issue's goal


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"orderhook bench {r['started_at']}{' (smoke)' if r['smoke'] else ''}: {m['cpu']}, "
        f"{m['cores']} cores, load {' '.join(map(str, m['load_average']))}",
    ]
    ing = r["ingest"]
    s = ing["summary"]
    o = ing["options"]
    lines += [
        "",
        f"Ingest, closed loop ({o['generator']}, {o['connections']} connections, "
        f"{o['rounds']} rounds of {o['seconds']:g} s), synchronous=FULL",
        f"  {'':8} {'hub req/s':>10} {'hub/bare':>9} {'hub CPU/req':>12}   ratios per round",
    ]
    for scenario in ("clean", "mixed"):
        x = s[scenario]
        lines.append(
            f"  {scenario:8} {_fmt(x['hub_rps_median']):>10} {_fmt(x['ratio_median'], '.2f'):>9}"
            f" {_fmt(x['hub_cpu_us_per_request']):>9} us   {x['ratios']}"
        )
    b = s["bare"]
    lines.append(
        f"  {'bare':8} {_fmt(b['rps_median']):>10} {'1.00':>9}"
        f" {_fmt(b['cpu_us_per_request']):>9} us"
        f"   (generator used at most {b['generator_cpu_share_max']:.0%} of a core)"
    )
    clean = s["clean"]["ratio_median"]
    lines.append(
        f"  goal hub/bare >= {GOAL}: "
        + ("-" if clean is None else "met" if clean >= GOAL else f"not met ({clean:.2f})")
        + " (why: docs/performance.md; the ceiling below)"
    )
    for scenario in ("clean", "mixed"):
        split = s[scenario].get("hub_cpu_us_per_request_by_process")
        if not split:  # a results file from before the split
            continue
        lines.append(
            f"  hub CPU per push, {scenario}: "
            + ", ".join(f"{name} {_fmt(us)} us" for name, us in split.items())
        )
    if b["generator_cpu_share_max"] > 0.9:
        lines.append("  WARNING: the load generator used a whole core: it may be the limit")
    d = ing["durability"]
    lines.append(
        f"  durability: {d['acked_200']:,} acks seen, {d['recorded_200']:,} recorded as 200 "
        f"({d['unanswered_in_flight']} answered after the generator stopped, limit "
        f"{d['in_flight_limit']}); events {d['events']:,} = new on requests "
        f"{d['events_new_on_requests']:,}: {'OK' if d['ok'] else 'FAILED'}"
    )
    lines += _ceiling(r.get("ceiling"))
    lines += ["", "Latency, open loop (from each push's scheduled send time)"]
    for x in r["latency"]["rates"]:
        a, t, g = x["ack_ms"], x["to_order_ms"], x["to_assignment_ms"]
        lines.append(
            f"  {x['rate']:>6}/s  ack p50 {a['p50']:7.1f}  p99 {a['p99']:7.1f}  max {a['max']:7.1f}"
            f" ms | push->order p50 {t['p50']:7.1f}  p99 {t['p99']:7.1f}"
            f" | push->assigned p50 {g['p50']:7.1f}  p99 {g['p99']:7.1f} ms"
        )
        lines.append(
            f"  {'':8} {x['acked']}/{x['pushes']} acked, {x['acked_without_order']} of them "
            f"without order, {x['acked_not_assigned']} not assigned, "
            f"{x['statuses'].get('503', 0)} answered 503 (shed: sent again by the platform)"
        )
    lines += _soak(r.get("soak"))
    lines += _aged(r.get("aged"))
    rp = r["replay"]
    lines += ["", f"Replay: {rp.get('method', rp.get('skipped'))}"]
    for x in rp.get("runs", []):
        lines.append(
            f"  --concurrency {x['concurrency']}: {_fmt(x['rps'])} req/s sending, "
            f"{_fmt(x['command_rps'])} req/s for the whole command ({x['requests']} requests)"
        )
    st = r["storage"]
    lines += [
        "",
        f"Storage: {_fmt(st['bytes_per_request'])} bytes per recorded request "
        f"(raw body+headers {_fmt(st['raw_bytes_per_request'])}), "
        f"{st['gb_per_million_pushes']} GB per million pushes; "
        f"{_fmt(st['disk_write_bytes_per_push'])} bytes written to disk per push",
    ]
    small = [t for t in st["btrees"] if t["share"] < 0.005]
    for t in st["btrees"]:
        if t in small:
            continue
        lines.append(
            f"  {t['kind']:5} {t['name']:24} {t['pages']:>8,} pages {t['bytes_per_request']:>8,.0f}"
            f" B/request {t['share']:>6.1%}"
        )
    lines.append(
        f"  (+{len(small)} small tables and indexes; index bytes per table byte: "
        f"{st['index_bytes_per_table_byte']})"
    )
    prof = r.get("profile")
    if prof:
        lines += ["", "Profile (py-spy, share of the hub's CPU samples)"]
        if "skipped" in prof:
            lines.append(f"  skipped: {prof['skipped']}")
        for stage, share in prof.get("stages", {}).items():
            lines.append(f"  {share:6.1%}  {stage}")
    return "\n".join(lines)


def _ceiling(c: dict[str, Any] | None) -> list[str]:
    """Each rung's ratio to bare, measured in the same rounds: what this machine allows."""
    if not c:
        return []
    lines = ["", "Ceiling: servers that do less, against bare in the same rounds (clean pushes)"]
    for name, x in c["rungs"].items():
        lines.append(
            f"  {name:10} {_fmt(x['rps_median']):>10} req/s {_fmt(x['ratio_median'], '.2f'):>6}"
            f" {_fmt(x['cpu_us_per_request']):>6} us/req   {x['ratios']}"
        )
    checks = ", ".join(
        f"{name} {d['acked_200']:,} acked, {d['stored']:,} stored"
        for name, d in c["durability"].items()
    )
    ok = all(d["ok"] for d in c["durability"].values())
    lines.append(f"  durability: {checks}: {'OK' if ok else 'FAILED'}")
    return lines


def _soak(sk: dict[str, Any] | None) -> list[str]:
    """The soak's first and last windows side by side: a cost that grows shows."""
    if not sk or not sk["windows"]:
        return []
    first, last = sk["windows"][0], sk["windows"][-1]
    lines = [
        "",
        f"Soak: {sk['rate']:,} paid orders/s for {sk['seconds']:g} s into one hub, "
        f"no task ever closed; {sk['acked']:,}/{sk['pushes']:,} acked, "
        f"ack p50 {sk['ack_ms']['p50']:.1f} p99 {sk['ack_ms']['p99']:.1f} ms",
        f"  {'':20} {'CPU/push, first -> last window':>32} {'memory MB, first -> last':>26}",
    ]
    for name, cpu in last["cpu_us_per_push"].items():
        before = first["cpu_us_per_push"].get(name, 0)
        mb0, mb1 = first["rss_mb"].get(name, 0.0), last["rss_mb"].get(name, 0.0)
        lines.append(f"  {name:20} {before:>20,} -> {cpu:>6,} us {mb0:>16.0f} -> {mb1:>5.0f}")
    return lines


def _aged(ag: dict[str, Any] | None) -> list[str]:
    """Each read on the month-old database: a read that walks a table shows here."""
    if not ag:
        return []
    rows = ", ".join(f"{n:,} {table}" for table, n in ag["rows"].items())
    lines = ["", f"Aged database ({rows}; best of 3)"]
    for name, x in ag["reads"].items():
        lines.append(f"  {name:40} {x['ms']:>9.2f} ms  ({x['found']:,} found)  {x['who']}")
    return lines


def emit(result: dict[str, Any], out: Path | None) -> None:
    """A bench tool's one JSON document: printed, and written to `out` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
