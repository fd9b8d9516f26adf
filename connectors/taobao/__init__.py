"""Taobao / Tmall (TOP). The API client lives in `connectors.taobao.api`."""
