"""Douyin Shop (抖店, op.jinritemai.com): message push (`push.py`).

The registry finds `connector` here; the API client lives in `api.py` (another module).
"""

from __future__ import annotations

from connectors.douyin.push import connector

__all__ = ["connector"]
