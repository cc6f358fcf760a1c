"""The campaign at a glance: the figures the ledger holds for a period, and the page that shows them.

`period` is the span and its chart steps in the campaign's timezone; `figures` reads the ledger
(deliveries, mentions, reposts, account health) into plain values; `runway` says when each queue
runs dry; `charts` draws them with matplotlib, the only module that imports it (an optional
extra, so the daemon never loads it); `page` writes the one HTML file; `summary` counts for the
terminal (`mentions --summary`, and `status`'s last 24 h in SQL).
"""
