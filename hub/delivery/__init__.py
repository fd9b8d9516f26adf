"""Delivery: everything the hub sends out, through one durable outbox.

    fanout.py         post-commit stage: new events -> outbox rows for matching subscriptions
    worker.py         claims due rows with a lease, sends, settles; sweeps expired leases
    senders.py        one sender per outbox kind (subscription, notify, platform_call)
    destinations.py   per-destination concurrency cap, slow-down and circuit breaker
    backoff.py        exponential backoff with jitter; Retry-After
    guard.py          SSRF guard under the subscription HTTP client
    signing.py        Standard Webhooks signatures, secret rotation
    subscriptions.py  add / disable / enable / rotate (CLI and admin API)
    shipments.py      reverse sync: a reported shipment -> the platform's ship call
    alerts.py         alerts raised inside the settle transaction
    routes.py         the HTTP API
    config.py         the [delivery] section

All SQL is in hub/store/delivery_sql.py; docs/delivery.md explains the guarantees.
"""
