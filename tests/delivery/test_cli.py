"""`orderhook subscriptions ...` and `orderhook outbox ...` through click's CliRunner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hub import settings as settings_mod
from hub.cli import cli
from hub.store import Store, delivery_sql
from hub.store.outbox_sql import enqueue
from tests.delivery.conftest import delivery_toml


def _invoke(config, *args):
    result = CliRunner().invoke(cli, [*args, "--config", str(config)])
    return result


def test_subscriptions_add_list_disable_enable_rotate(write_config):
    config = write_config(delivery_toml())
    added = _invoke(
        config,
        "subscriptions",
        "add",
        "http://127.0.0.1:9/erp",
        "--name",
        "erp",
        "--kind",
        "paid",
        "--kind",
        "shipped",
        "--shop",
        "acme",
    )
    assert added.exit_code == 0, added.output
    assert "subscription 1 -> http://127.0.0.1:9/erp" in added.output
    secret = added.output.split("secret: ")[1].split()[0]
    assert secret.startswith("whsec_")

    listed = _invoke(config, "subscriptions", "list")
    assert listed.exit_code == 0, listed.output
    assert "erp" in listed.output and "kinds=paid,shipped" in listed.output
    assert "shops=acme" in listed.output and "active" in listed.output

    as_json = json.loads(_invoke(config, "subscriptions", "list", "--json").output.splitlines()[0])
    assert "secret" not in as_json and as_json["kinds"] == ["paid", "shipped"]

    disabled = _invoke(config, "subscriptions", "disable", "1")
    assert disabled.exit_code == 0 and "disabled" in disabled.output
    assert "disabled (disabled by hand)" in _invoke(config, "subscriptions", "list").output
    enabled = _invoke(config, "subscriptions", "enable", "1")
    assert enabled.exit_code == 0 and "enabled" in enabled.output

    rotated = _invoke(config, "subscriptions", "rotate", "1", "--grace-hours", "2")
    assert rotated.exit_code == 0, rotated.output
    assert rotated.output.split("secret: ")[1].split()[0] != secret
    assert "rotating until" in _invoke(config, "subscriptions", "list").output

    missing = _invoke(config, "subscriptions", "disable", "99")
    assert missing.exit_code == 1 and "no subscription 99" in missing.output


def test_subscriptions_add_refuses_bad_input(write_config):
    strict = write_config("[delivery]\nallow_private = false\n")
    refused = _invoke(strict, "subscriptions", "add", "http://10.0.0.8/hook")
    assert refused.exit_code == 1 and "private address" in refused.output
    bad_kind = _invoke(strict, "subscriptions", "add", "https://example.com", "--kind", "nope")
    assert bad_kind.exit_code == 2
    bad_secret = _invoke(
        write_config(delivery_toml()),
        "subscriptions",
        "add",
        "http://127.0.0.1/x",
        "--secret",
        "whsec_c2hvcnQ=",
    )
    assert bad_secret.exit_code == 1 and "24 bytes" in bad_secret.output


def _seed(config):
    settings = settings_mod.load(config, env={})
    store = Store(settings.db)

    def rows(conn):
        ids = [
            enqueue(conn, kind="subscription", target="1", payload={"n": n}, order_key=f"o{n}")
            for n in range(3)
        ]
        ids.append(enqueue(conn, kind="notify", target="ops", payload={"n": 9}))
        for row_id in ids[:2] + ids[3:]:
            conn.execute(
                "UPDATE outbox SET state='dead', attempts=3, last_error='HTTP 500' WHERE id=?",
                (row_id,),
            )
        delivery_sql.add_attempt(
            conn,
            delivery_sql.Attempt(
                ids[0],
                "2026-11-11T00:00:00Z",
                12.5,
                {"url": "http://x"},
                500,
                "nope",
                None,
                "HTTP 500",
                "dead",
                True,
            ),
        )
        return ids

    return store, store.run(rows)


def test_outbox_list_show_and_retry(write_config):
    config = write_config("")
    store, ids = _seed(config)

    listed = _invoke(config, "outbox", "list")
    assert listed.exit_code == 0, listed.output
    assert len([line for line in listed.output.splitlines() if "tries=" in line]) == 4
    dead = _invoke(config, "outbox", "list", "--dead", "--kind", "subscription")
    assert [line.split()[0] for line in dead.output.splitlines() if "tries=" in line] == [
        str(ids[1]),
        str(ids[0]),
    ]

    shown = _invoke(config, "outbox", "show", str(ids[0]))
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["payload"] == {"n": 0}
    assert detail["attempt_log"][0]["response_status"] == 500
    assert detail["attempt_log"][0]["duration_ms"] == 12.5

    one = _invoke(config, "outbox", "retry", str(ids[0]))
    assert one.exit_code == 0 and f"queued row {ids[0]}" in one.output
    again = _invoke(config, "outbox", "retry", str(ids[0]))
    assert again.exit_code == 0  # pending rows can be nudged again (due now)

    filtered = _invoke(config, "outbox", "retry", "--dead", "--kind", "subscription")
    assert filtered.exit_code == 0 and "queued 1 dead row(s)" in filtered.output
    counts = store.run(delivery_sql.state_counts)
    assert counts == {"pending": 3, "dead": 1}  # the notify row kept its state
    row = store.run(delivery_sql.get_row, ids[1])
    assert row["attempts"] == 0  # a fresh budget

    assert _invoke(config, "outbox", "retry").exit_code == 2
    assert _invoke(config, "outbox", "retry", "5", "--kind", "notify").exit_code == 2
    assert _invoke(config, "outbox", "show", "999").exit_code == 1


def test_every_command_has_examples_in_help():
    for group in ("outbox", "subscriptions"):
        for command in cli.commands[group].commands:
            result = CliRunner().invoke(cli, [group, command, "--help"])
            assert result.exit_code == 0
            assert "orderhook " + group in result.output, (group, command)
