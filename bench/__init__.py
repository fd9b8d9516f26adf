"""Benchmarks: durable ingest against the framework's own ceiling, latency from push to
order, replay speed and storage cost. Run with `make bench` (or `python -m bench --help`);
see docs/performance.md for what the figures mean and the latest ones."""
