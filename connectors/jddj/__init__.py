"""JD Daojia (京东到家 / 秒送, opendj.jd.com): message push (`push.py`).

Daojia is JD's O2O platform, separate from JOS (`connectors/jd`): its pushes are signed
form posts to the merchant's URL. The registry finds `connector` here.
"""

from __future__ import annotations

from connectors.jddj.push import connector

__all__ = ["connector"]
