"""`orderhook simulate`: signed pushes and scenarios against a real hub on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import textwrap

import click
from click.testing import CliRunner

from connectors import standard
from hub.cli import cli
from hub.settings import Shop
from sandbox import simulate as simulating
from tests.conftest import DEMO_SECRET


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_standard_sign_reproduces_the_spec_vector():
    # Standard Webhooks' published example (spec and every official library's tests)
    sig = standard.signature(
        standard.secret_bytes(DEMO_SECRET),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        b'{"test": 2432232314}',
    )
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_simulated_push_is_accepted_and_becomes_an_order(live_hub, write_config):
    url, hub = live_hub
    cfg = str(write_config(""))
    result = invoke(
        "simulate",
        "standard",
        "paid",
        "--shop",
        "acme",
        "--url",
        url,
        "--order-id",
        "123456789012345678901",
        "--amount",
        "12.30",
        "--config",
        cfg,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == 200
    row = hub.store.run(lambda c: c.execute("select kind, order_id, amount from events").fetchone())
    assert row == ("paid", "123456789012345678901", "12.30")


def test_a_wrong_secret_is_refused_and_the_exit_code_says_so(live_hub, tmp_path):
    url, _hub = live_hub
    result = invoke(
        "simulate",
        "standard",
        "created",
        "--shop",
        "acme",
        "--url",
        url,
        "--secret",
        "whsec_" + "b3RoZXItc2VjcmV0LW9mLXRoZS1zZW5kZXI=",
        "--config",
        str(tmp_path / "none.toml"),
    )
    assert result.exit_code == 1 and "401" in result.output


def test_scenario_burst_duplicates_out_of_order_and_algorithm_change(
    live_hub, write_config, tmp_path
):
    url, hub = live_hub
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent("""
        platform = "standard"
        shop = "acme"
        [[steps]]
        type = "burst"
        orders = 6
        events = ["created", "paid"]
        [[steps]]
        type = "duplicates"
        count = 4
        [[steps]]
        type = "out_of_order"
        orders = 2
        events = ["created", "paid", "shipped"]
        [[steps]]
        type = "algorithm_change"
        variant = "secret-text-key"
        orders = 1
        events = ["paid"]
    """)
    )
    result = invoke(
        "simulate",
        "scenario",
        str(path),
        "--url",
        url,
        "--seed",
        "3",
        "--config",
        str(write_config("")),
        "--json",
    )
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output[result.output.index("{") :])["steps"]
    assert steps[0] == {"type": "burst", "sent": 12, "200": 12}
    assert steps[1] == {"type": "duplicates", "sent": 4, "200": 4}
    assert steps[3] == {"type": "algorithm_change", "sent": 1, "401": 1}
    outcomes = dict(
        hub.store.run(
            lambda c: c.execute("select outcome, count(*) from requests group by 1").fetchall()
        )
    )
    assert outcomes == {"accepted": 18, "duplicate": 4, "rejected": 1}
    # reversed arrival never moves an order backwards: shipped stays shipped
    statuses = hub.store.run(lambda c: [r[0] for r in c.execute("select status from orders")])
    assert statuses.count("shipped") == 2
    forensics = hub.store.run(
        lambda c: c.execute("select forensics from requests where outcome='rejected'").fetchone()[0]
    )
    assert "secret's text" in forensics


def test_a_bad_scenario_file_is_a_usage_error(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"platform": "standard", "shop": "a", "steps": [{"type": "flood"}]}))
    result = invoke("simulate", "scenario", str(path), "--url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "type must be one of" in result.output


def test_channel_fakes_are_mounted_from_the_fakes_package(tmp_path, monkeypatch):
    pkg = tmp_path / "myfakes"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tmall.py").write_text(
        "import click\n@click.command()\ndef command():\n    'Serve a fake channel.'\n"
        "    click.echo('serving')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = simulating.fake_commands("myfakes")
    assert list(found) == ["tmall"] and isinstance(found["tmall"], click.Command)
    assert simulating.fake_commands("no_such_package_here") == {}
    monkeypatch.setattr(simulating, "fake_commands", lambda package="x": found)
    result = invoke("simulate", "tmall")
    assert result.output.strip() == "serving"
    sys.modules.pop("myfakes", None)


def test_variants_sign_the_same_message_the_ways_senders_get_it_wrong():
    shop = Shop(name="acme", platform="standard", secret=DEMO_SECRET)
    msg = standard.connector.simulate(shop, simulating.Kind.PAID, "1")
    variants = standard.connector.variants(shop, msg)
    h = msg.headers
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + msg.body
    text_keyed = hmac.new(DEMO_SECRET.encode(), signed, hashlib.sha256).digest()
    wrong = variants["secret-text-key"]
    assert wrong.body == msg.body
    assert wrong.headers["webhook-signature"] == "v1," + base64.b64encode(text_keyed).decode()
    assert all(v.headers["webhook-signature"] != h["webhook-signature"] for v in variants.values())


def test_every_simulate_subcommand_has_help_with_examples():
    names = CliRunner().invoke(cli, ["simulate", "--help"]).output
    assert "standard" in names and "scenario" in names
    for name in [*simulating.simulators(), "scenario"]:
        result = invoke("simulate", name, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output, name
