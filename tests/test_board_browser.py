"""The board in a real headless Chromium (Debian's, driven by Playwright): a push shows
up on the open page without a reload, so does a shop whose reconciliation is blocked
(and its clearing), and a screenshot is kept for a person to look at."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import httpx
import pytest

from hub import settings as settings_mod
from hub.auth import issue_token
from hub.store import Store, reconcile_sql
from tests.dispatch_support import DISPATCH_TOML, push_body
from tests.helpers import signed

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("ORDERHOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def settings(write_config):
    return settings_mod.load(write_config(DISPATCH_TOML), env={})


@pytest.fixture
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        message = (
            f"no Chromium at {CHROMIUM} (make test installs it as root: apt-get install chromium)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def test_push_appears_on_the_open_board_without_reload(live_hub, settings, chromium_path, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, _hub = live_hub
    token = Store(settings.db).run(issue_token, "wall", "viewer")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS, headless=True)
        try:
            page = browser.new_page(
                viewport={"width": 1400, "height": 900}, timezone_id="Asia/Shanghai"
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

            # a shop whose pulls need a person: a banner on top, a badge in its row
            store = Store(settings.db)
            banner = page.locator("#blocked")
            expect(banner).to_be_hidden()
            error = '<img src=x onerror="document.title=1"> env JD_TOKEN 未设置'
            store.run(reconcile_sql.mark_blocked, "acme-jd", "jd", "missing_token", error)
            store.run(
                reconcile_sql.set_next_try, "acme-jd", datetime(2026, 11, 11, 2, 30, tzinfo=UTC)
            )
            line = banner.locator("[data-shop='acme-jd']")
            expect(line).to_contain_text("missing_token")
            expect(line).to_contain_text(error)  # the platform's text shown as text
            expect(line).to_contain_text("1 try ·")
            expect(line).to_contain_text("10:30:00")  # the next try on the Beijing clock
            assert banner.locator("img").count() == 0
            expect(banner).to_contain_text("restart the hub")
            row = page.locator("#reconcile tr", has_text="acme-jd")
            expect(row).to_contain_text("BLOCKED")
            expect(row).to_contain_text("never")
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
