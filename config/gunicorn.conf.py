"""gunicorn's settings for the standalone server: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Only what several workers need for Prometheus metrics (docs/deploy.md, "Health checks, metrics
and logs"): with ``PROMETHEUS_MULTIPROC_DIR`` set, every worker writes its counters to files in that
directory and ``/metrics`` adds them up. The directory is emptied when the server starts (values of
an earlier run would count again), and a worker that exits is marked dead. Command-line options
(``--workers``, ``--bind``, ...) still apply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def on_starting(server: Any) -> None:
    """In the master, before any worker: an empty metrics directory."""
    directory = _multiprocess_dir()
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges stop counting (prometheus_client's multiprocess mode)."""
    if _multiprocess_dir():
        try:
            from prometheus_client import multiprocess
        except ImportError:  # metrics need the serve extra; without it there is nothing to mark
            return
        multiprocess.mark_process_dead(worker.pid)
