"""The CAD side: events and their validation, the client that starts and signals calls,
EIDO, the HTTP client, replays, delivery to Temporal, dead letters, what the edge holds
for the hand-off.
"""
