"""A stored session, out: ``csv`` (the CSV files, docs/csv.md) and ``report`` (one
self-contained HTML page)."""
