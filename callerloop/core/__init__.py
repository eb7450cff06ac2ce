"""Shared by every part: settings, agency configuration, the database's tables and
migrations, the payload codec, logging, audit, the Temporal connection, health and
metrics.
"""
