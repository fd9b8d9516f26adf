"""Dispatch benchmark: push-to-assignment latency under a steady stream of pushes, and
routing decisions per second with 200 rules. Prints one JSON document.

    .venv/bin/python bench/dispatch.py                      # defaults: 100 pushes/s for 10 s
    .venv/bin/python bench/dispatch.py --rate 300 --seconds 20 --out bench/dispatch.json

The hub runs as its own `orderhook serve` process; this one only sends. Latency is
measured from the hub's own clock: `requests.received_at` (the push's first
byte was read) to `tasks.assigned_at` (the assignment, written in the dispatch
stage's next pass, at most ~50 ms after the ingest commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from connectors import standard
from hub import settings as settings_mod
from hub.dispatch import rules as routing
from hub.dispatch.config import DispatchConfig
from hub.model import parse_iso
from hub.store.child import process_cpu_seconds

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PROVINCES = ["广东", "浙江", "江苏", "上海", "北京", "四川", "湖北", "山东", "福建", "河南"]


def config_text(db: Path, n_rules: int) -> str:
    lines = [
        f'[hub]\ndb = "{db}"\n',
        f'[shops.bench]\nplatform = "standard"\nsecret = "{SECRET}"\n',
        '[dispatch]\ndefault_group = "general"\n',
        "[dispatch.groups.general]\n[dispatch.groups.vip]\n[dispatch.groups.south]\n",
    ]
    for i in range(8):
        lines.append(
            f'[dispatch.operators.op{i}]\ngroups = ["general", "vip", "south"]\ncapacity = 100000\n'
        )
    # 199 specific rules that rarely match (SKU lists), then a broad one at the end:
    # without the rule index every order would be tested against (almost) all of them.
    for i in range(n_rules - 1):
        lines.append(
            f'[[dispatch.rules]]\nname = "sku-{i}"\nsku = ["SKU-{i}-A", "SKU-{i}-B"]\n'
            f'amount = "> {i}"\ngroup = "{("vip", "south")[i % 2]}"\npriority = {i % 5}\n'
        )
    lines.append(
        '[[dispatch.rules]]\nname = "south"\nprovince = ["广东", "福建"]\ngroup = "south"\n'
    )
    return "\n".join(lines)


def body(order_id: str, rng: random.Random) -> bytes:
    return json.dumps(
        {
            "type": "order.paid",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {
                "order_id": order_id,
                "amount": f"{rng.randrange(100, 200000) / 100:.2f}",
                "currency": "CNY",
                "province": rng.choice(PROVINCES),
                "items": [{"sku": f"X-{rng.randrange(1000)}", "category": "misc", "qty": 1}],
            },
        },
        ensure_ascii=False,
    ).encode()


async def stream(url: str, rate: float, seconds: float) -> tuple[int, int, float]:
    """Send `rate` pushes a second on a schedule (open loop, at most 256 in flight)."""
    rng = random.Random(7)
    sent = failed = 0
    interval = 1.0 / rate
    gate = asyncio.Semaphore(256)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)

    async def one(client: httpx.AsyncClient, order_id: str) -> None:
        nonlocal failed
        payload = body(order_id, rng)
        headers = standard.sign_headers(SECRET, "msg_" + uuid.uuid4().hex, payload)
        try:
            response = await client.post(
                "/webhooks/standard/bench", content=payload, headers=headers
            )
            failed += response.status_code != 200
        except httpx.HTTPError:
            failed += 1
        finally:
            gate.release()

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        pending: set[asyncio.Task[None]] = set()
        while (now := time.perf_counter() - start) < seconds:
            while sent < int(now / interval) + 1:
                await gate.acquire()
                task = asyncio.create_task(one(client, f"B{sent:09d}"))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(interval / 2)
        await asyncio.gather(*pending)
    return sent, failed, time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """CPU time the hub process used so far (Linux /proc): a load-independent cost."""
    seconds = process_cpu_seconds(pid)
    return float("nan") if seconds is None else seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("the hub did not start")


def latencies(db: Path) -> list[float]:
    import sqlite3

    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT r.received_at, t.assigned_at FROM tasks t JOIN events e ON e.platform = "
        "t.platform AND e.shop = t.shop AND e.order_id = t.order_id JOIN requests r ON "
        "r.id = e.request_id WHERE t.assigned_at IS NOT NULL"
    ).fetchall()
    conn.close()
    return [(parse_iso(b) - parse_iso(a)).total_seconds() * 1000 for a, b in rows]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 2)


def amount_only(n_rules: int) -> DispatchConfig:
    text = "[dispatch.groups.g]\n" + "".join(
        f'[[dispatch.rules]]\nname = "a{i}"\namount = "{5000 + i}..{5000 + i}.5"\ngroup = "g"\n'
        for i in range(n_rules)
    )
    config: DispatchConfig = settings_mod.parse(text, env={}).sections["dispatch"]
    return config


def routing_rate(cfg, seconds: float = 2.0) -> dict[str, float]:
    rng = random.Random(11)
    orders = [
        routing.order_facts(
            {
                "platform": "standard",
                "shop": "bench",
                "amount": str(rng.randrange(1, 5000)),
                "facts": {"province": rng.choice(PROVINCES), "skus": [f"X-{rng.randrange(999)}"]},
            }
        )
        for _ in range(1000)
    ]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for facts in orders:
            routing.route(cfg, facts)
        done += len(orders)
    return {"rules": len(cfg.rules), "decisions_per_s": round(done / (time.perf_counter() - start))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="pushes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        path = Path(tmp) / "bench.toml"
        path.write_text(config_text(db, args.rules), encoding="utf-8")
        settings = settings_mod.load(path, env={})
        cfg = settings.sections["dispatch"]
        print(f"routing with {len(cfg.rules)} rules...", file=sys.stderr)
        route = {
            "sku_and_province_rules": routing_rate(cfg),
            # every rule a candidate: the index cannot help, each order meets all 200
            "amount_only_rules": routing_rate(amount_only(args.rules)),
        }
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from hub.cli import main; main()",
                "serve",
                "--config",
                str(path),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            print(f"pushing {args.rate:g}/s for {args.seconds:g} s...", file=sys.stderr)
            cpu_before = cpu_seconds(server.pid)
            sent, failed, took = asyncio.run(stream(url, args.rate, args.seconds))
            time.sleep(1.5)  # let the last assignments commit
            hub_cpu = cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
        ms = latencies(db)
    result = {
        "benchmark": "dispatch",
        "pushes": sent,
        "failed_pushes": failed,
        "rate_per_s": args.rate,
        # below the asked rate when this sender (or a busy machine) could not keep up
        "achieved_rate_per_s": round(sent / took, 1),
        "assigned": len(ms),
        # hub CPU per push (ingest + apply + route + assign): what one core could carry
        "hub_cpu_ms_per_push": round(hub_cpu * 1000 / max(sent, 1), 2),
        "push_to_assignment_ms": {
            "p50": pct(ms, 50),
            "p99": pct(ms, 99),
            "max": round(max(ms), 2),
            "mean": round(statistics.fmean(ms), 2),
        }
        if ms
        else None,
        "routing": route,
    }
    # run as a script (bench/ is not a package on its path here), so not bench.report.emit
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
