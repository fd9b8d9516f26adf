"""Pinduoduo. The API client lives in `connectors.pinduoduo.api`."""
