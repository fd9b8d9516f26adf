"""Escalation from stored timestamps: a task nobody claimed for the group's
`escalate_after_minutes` (counted from `waiting_since`: creation, or the last time it was
put back) moves to the supervisor queue and notifies the group's channels. The scan
reads only the database, so timers survive restarts; a stuck backlog (the queue at or
above `backlog_alert`) is announced at most once an hour per group."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from hub.dispatch import assign, notify
from hub.dispatch.config import DispatchConfig
from hub.model import iso_utc, parse_iso
from hub.store import dispatch_sql


def escalate_due(conn: sqlite3.Connection, config: DispatchConfig, now: datetime) -> list[int]:
    stamp = iso_utc(now)
    escalated: list[int] = []
    for group_name in dispatch_sql.open_task_groups(conn):
        group = config.group(group_name)
        limit_min = group.escalate_after.total_seconds() / 60
        for task in dispatch_sql.due_for_escalation(
            conn, group_name, iso_utc(now - group.escalate_after)
        ):
            key = (task["platform"], task["shop"], task["order_id"])
            waited = (now - parse_iso(task["waiting_since"])).total_seconds() / 60
            holder = f", was assigned to {task['assignee']}" if task["assignee"] else ""
            detail = f"unclaimed {waited:.0f} min (limit {limit_min:g} min){holder}"
            dispatch_sql.requeue_task(conn, task["id"], stamp, queue="supervisor", escalated=True)
            dispatch_sql.log_task(conn, "escalated", stamp, task, detail=detail)
            notify.send(
                conn,
                config,
                group=group_name,
                severity="warning",
                title=f"Order {key[2]} unclaimed in {group_name}",
                text=f"{key[0]}/{key[1]} order {key[2]}: {detail}; now in the supervisor queue",
                dedupe=f"escalated:{task['id']}",
                now=stamp,
                key=key,
                task_id=task["id"],
            )
            escalated.append(int(task["id"]))
    for group_name, group in config.groups.items():
        if group.backlog_alert is None:
            continue
        waiting = dispatch_sql.queue_length(conn, group_name)
        if waiting >= group.backlog_alert:
            notify.send(
                conn,
                config,
                group=group_name,
                severity="critical",
                title=f"Backlog in {group_name}: {waiting} tasks waiting",
                text=f"{waiting} tasks wait in {group_name} (alert at {group.backlog_alert}); "
                "nobody has capacity",
                dedupe=f"backlog:{group_name}:{now.strftime('%Y%m%d%H')}",
                now=stamp,
                log_unsent=False,
            )
    if escalated:
        assign.hand_out(conn, config, stamp)  # escalation freed its holders' capacity
    return escalated
