"""The API client docs stay honest: every shop option the clients and reconciliation
read is documented, and so is the command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = [
    *sorted((ROOT / "connectors" / "apiclient").glob("*.py")),
    *sorted((ROOT / "connectors").glob("*/api.py")),
    ROOT / "hub" / "reconcile.py",
]
DOCS = (ROOT / "docs" / "connectors" / "api-clients.md").read_text(encoding="utf-8") + (
    ROOT / "docs" / "connectors" / "jd.md"
).read_text(encoding="utf-8")
OPTION = re.compile(
    r"""options(?:\.get\(|\[)\s*["']([a-z_]+)["']|option_secret\(self\.shop, "([a-z_]+)"\)|option_seconds\(shop, "([a-z_]+)\""""
)


def options_read() -> set[str]:
    found: set[str] = set()
    for path in CODE:
        for match in OPTION.finditer(path.read_text(encoding="utf-8")):
            found.update(group for group in match.groups() if group)
        # the options a client reads the seller's token from (`token_options`)
        for names in re.findall(
            r"token_options: ClassVar\[[^\]]*\]\] = \(([^)]*)\)", path.read_text(encoding="utf-8")
        ):
            found.update(re.findall(r'"([a-z_]+)"', names))
    text = (ROOT / "connectors" / "apiclient" / "options.py").read_text(encoding="utf-8")
    found.update(re.findall(r'\("(api_[a-z_]+)", "', text))  # LIMIT_OPTIONS
    return found


def test_every_shop_option_is_documented() -> None:
    options = options_read()
    assert {"api_rate", "reconcile_seconds", "sign_method", "access_token", "session"} <= options
    missing = sorted(o for o in options if f"`{o}" not in DOCS and f"options.{o}" not in DOCS)
    assert missing == []


def test_command_and_routes_are_documented() -> None:
    for text in ("orderhook reconcile", "/api/platform-apis", "/api/reconcile"):
        assert text in DOCS
