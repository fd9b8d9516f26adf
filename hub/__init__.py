"""orderhook hub: the running service. Read it as the data path: ingest -> store -> orders
-> dispatch (rules, assignment, escalation) -> board."""
