"""callerloop's benchmark harness: `make bench` (or `uv run python -m bench --help`).

Starts the local stack on embedded defaults (Temporal dev server on a SQLite file, SQLite
application database, `local` SMS provider) in a scratch folder, drives it with CAD events
and writes `bench/results/<timestamp>.json` plus a Markdown report with PNG plots.
"""
