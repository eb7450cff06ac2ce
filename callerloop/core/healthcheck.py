"""The container image's HEALTHCHECK: exit 0 when the web app (CALLERLOOP_WEB_PORT) or the
worker (CALLERLOOP_WORKER_HTTP_ADDRESS) answers /healthz on this machine, 1 otherwise.

    python -m callerloop.core.healthcheck
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def local_urls(environ: dict[str, str]) -> list[str]:
    """Where this container's process would answer, whichever command it runs."""
    urls = [f"http://127.0.0.1:{environ.get('CALLERLOOP_WEB_PORT', '8000')}/healthz"]
    worker = environ.get("CALLERLOOP_WORKER_HTTP_ADDRESS", "")
    if worker:
        port = worker.rpartition(":")[2]
        urls.append(f"http://127.0.0.1:{port}/healthz")
    return urls


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    urls = local_urls(dict(os.environ))
    if any(healthy(url) for url in urls):
        return 0
    print(f"unhealthy: no answer from {', '.join(urls)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
