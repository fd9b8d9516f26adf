"""The channel docs stay honest: every shop option the channel clients and the channel
service read is documented in docs/connectors/{taobao,pinduoduo}.md."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = {
    "taobao": [ROOT / "connectors/taobao/tmc.py", ROOT / "connectors/taobao/__init__.py"],
    "pinduoduo": [
        ROOT / "connectors/pinduoduo/channel.py",
        ROOT / "connectors/pinduoduo/__init__.py",
    ],
}
SHARED = [ROOT / "hub/channels.py", ROOT / "connectors/channel.py"]
OPTION = re.compile(r"""(?:link\.option\(|options\.get\(|option\()\s*["']([a-z_]+)["']""")


def test_every_channel_option_is_documented() -> None:
    for platform, files in CODE.items():
        docs = (ROOT / f"docs/connectors/{platform}.md").read_text(encoding="utf-8")
        read = {m for path in [*files, *SHARED] for m in OPTION.findall(path.read_text())}
        assert {"reconnect_seconds", "drain_seconds"} <= read
        missing = sorted(o for o in read if f"`{o}`" not in docs)
        assert missing == [], f"{platform}: undocumented options {missing}"
