"""The worker's HTTP API and triage page (docs/api.md, docs/openapi.yaml).

One module per job: :mod:`~streams.api.config` (settings), :mod:`~streams.api.auth`
(the optional bearer token), :mod:`~streams.api.alert_index` (every alert's latest state,
in memory) fed by :mod:`~streams.api.alert_feed` (a tail of the alerts topic),
:mod:`~streams.api.queries` (``GET /alerts`` parameters, filters, sort, cursors),
:mod:`~streams.api.timeline` (one transaction's events and verdicts),
:mod:`~streams.api.peers` (asking the other workers) and :mod:`~streams.api.routes`
(``install_api``: the pages on Faust's web server). Only the last two and the feed
touch the network; the rest is pure and tested without a broker. ``static/`` holds the
triage page and the served copy of docs/openapi.yaml (package data).
"""
