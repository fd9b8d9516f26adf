"""Dispatch: order state -> routed task -> operator, with escalation and a live board.

facts.py     the normalised order facts rules read
config.py    the [dispatch] section: groups, operators, rules (validated)
rules.py     routing and its explanation (pure)
engine.py    after each commit: apply events, route, close, hand out
assign.py    assignment by live load, round robin among equals
escalate.py  unclaimed too long -> supervisor queue; stuck backlogs
notify.py    notifications as outbox rows in the decision's transaction
state.py     the live config per hub and its hot reload
service.py   the background stages (listed in hub.runtime.SERVICES)
api.py       the tasks API for operators and supervisors
"""
