"""The board in a real headless Chromium (Debian's, driven by Playwright): a push shows
up on the open page without a reload, so does a shop whose reconciliation is blocked
(and its clearing), and a screenshot is kept for a person to look at."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from hub import settings as settings_mod
from hub.auth import issue_token
from hub.model import parse_iso
from hub.store import Store, reconcile_sql
from tests.conftest import CHROMIUM_FLAGS as FLAGS
from tests.dispatch_support import DISPATCH_TOML, push_body
from tests.helpers import signed
from tests.platform_fake import shop_toml

pytestmark = pytest.mark.slow

TOKEN_VAR = "ORDERHOOK_TEST_BOARD_TOKEN"  # never set: the shop's pulls are blocked


@pytest.fixture
def settings(write_config, monkeypatch):
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    # no call leaves the hub without a token; the port would refuse one anyway
    jd = shop_toml("jd", "http://127.0.0.1:9", reconcile_seconds=3600)
    jd = jd.replace('"tok"', f'"env:{TOKEN_VAR}"')
    return settings_mod.load(write_config(DISPATCH_TOML + "\n" + jd), env={})


def test_push_appears_on_the_open_board_without_reload(live_hub, settings, chromium_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, _hub = live_hub
    token = Store(settings.db).run(issue_token, "wall", "viewer")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS, headless=True)
        try:
            page = browser.new_page(
                viewport={"width": 1400, "height": 900},
                timezone_id="Asia/Shanghai",
                locale="en-US",
            )
            page.goto(f"{url}/board?token={token}")
            assert page.url == f"{url}/board"  # the token left the address bar
            expect(page.locator("#status")).to_contain_text("live")
            expect(page.locator("#tasks")).to_contain_text("no tasks yet")
            navigations = []
            page.on("framenavigated", lambda frame: navigations.append(frame.url))

            body = push_body("paid", "4242424242", amount="888.00", province="浙江")
            headers = signed(body)
            with httpx.Client(base_url=url) as http:
                assert (
                    http.post("/webhooks/standard/acme", content=body, headers=headers).status_code
                    == 200
                )

            row = page.locator("#tasks tr", has_text="4242424242")
            expect(row).to_contain_text("vip")
            expect(row).to_contain_text("big-south")
            expect(page.locator("#operators")).to_contain_text("1/")
            expect(page.locator("#stages")).to_contain_text("assigned")
            assert navigations == []  # no reload happened
            # times are shown on the reader's clock (Beijing here), never "Invalid Date"
            assert "Invalid Date" not in page.content()
            snap = httpx.get(f"{url}/board/snapshot?token={token}").json()
            utc_hour = int(snap["decisions"][0]["at"][11:13])
            shown = page.locator("#decisions tr").nth(1).locator("td").first.inner_text()
            assert int(shown[:2]) == (utc_hour + 8) % 24

            # the hub's own loop found no token for acme-jd: a banner on top, a badge in its row
            banner = page.locator("#blocked")
            line = banner.locator("[data-shop='acme-jd']")
            expect(line).to_contain_text(f"missing_token: environment variable {TOKEN_VAR}")
            expect(line).to_contain_text("1 try ·")
            snap = httpx.get(f"{url}/board/snapshot?token={token}").json()
            (jd,) = [r for r in snap["reconcile"] if r["shop"] == "acme-jd"]
            next_try = parse_iso(jd["blocked"]["next_try_at"]) + timedelta(hours=8)
            expect(line).to_contain_text(f"next try {next_try:%m/%d/%Y}, {next_try:%H:%M:%S}")
            expect(banner).to_contain_text("restart the hub")
            row = page.locator("#reconcile tr", has_text="acme-jd")
            expect(row).to_contain_text("never")
            expect(row).to_contain_text("BLOCKED")

            # the platform's text is shown as text; a shop no longer configured stays quiet
            store = Store(settings.db)
            error = '<img src=x onerror="document.title=1"> app key 无效'
            store.run(reconcile_sql.mark_blocked, "acme-jd", "jd", "invalid_app_key", error)
            store.run(reconcile_sql.mark_blocked, "gone", "jd", "missing_token", "no token")
            expect(line).to_contain_text(f"invalid_app_key: {error}")
            assert banner.locator("img").count() == 0
            gone = page.locator("#reconcile tr", has_text="gone")
            expect(gone).to_contain_text("blocked (missing_token), no longer pulled")
            expect(banner).not_to_contain_text("gone")
            shot = tmp_path / "board.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"board screenshot: {shot}")

            store.run(reconcile_sql.clear_blocked, "acme-jd")  # as a pull that works does
            expect(banner).to_be_hidden()
            expect(row).not_to_contain_text("BLOCKED")
            assert navigations == []
            page.close()
        finally:
            browser.close()
