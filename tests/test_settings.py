from __future__ import annotations

from pathlib import Path

import pytest

from hub import settings
from hub.settings import ConfigError

GOOD = """
[hub]
db = "data/hub.db"
port = 9000

[shops.acme]
platform = "standard"
secret = "env:ACME_SECRET"
old_secrets = ["whsec_b2xk"]
"""


def test_loads_shops_secrets_from_env_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf.toml"
    path.write_text(GOOD)
    s = settings.load(path, env={"ACME_SECRET": "whsec_bmV3"})
    assert s.port == 9000
    assert s.db == tmp_path / "data" / "hub.db"
    shop = s.shops["acme"]
    assert shop.secret == "whsec_bmV3"
    assert shop.all_secrets() == ("whsec_bmV3", "whsec_b2xk")


def test_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "conf.toml"
    path.write_text(GOOD)
    s = settings.load(
        path, env={"ACME_SECRET": "x", "ORDERHOOK_DB": "/tmp/o.db", "ORDERHOOK_PORT": "7000"}
    )
    assert s.db == Path("/tmp/o.db")
    assert s.port == 7000
    assert s.shed_after_ms == 1000  # the default
    off = settings.load(path, env={"ACME_SECRET": "x", "ORDERHOOK_SHED_AFTER_MS": "0"})
    assert off.shed_after_ms == 0


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[hub]\nport = 'x'\n", 2, "not a whole number"),
        ("[hub]\nprot = 1\n", 2, "unknown setting"),
        ("[shops.a]\nplatform = 'douyn'\nsecret = 's'\n", 2, "not a known platform"),
        ("[shops.a]\nplatform = 'standard'\n", 1, "'secret' is required"),
        ("[shops.a]\nplatform = 'standard'\nsecret = 'env:NOPE'\n", 3, "NOPE is not set"),
        ("[hub]\nport = 1\n[hub\n", 3, "not valid TOML"),
        ("[mystery]\nx = 1\n", 1, "unknown section"),
        ("[hub]\nmax_body_bytes = 5\n", 2, "outside"),
        ("[hub]\nshed_after_ms = -1\n", 2, "outside 0..600000"),
    ],
)
def test_a_bad_file_fails_with_its_line_and_reason(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        settings.load(path, env={})
    assert f"bad.toml:{line}:" in str(err.value)
    assert words in str(err.value)


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="orderhook init"):
        settings.load(tmp_path / "nope.toml", env={})
