"""Instructions per request through the WSGI handler, counted by valgrind (callgrind): a figure that,
unlike CPU time on a shared 2-core host, does not move by a few per cent from run to run (the same
command gives the same count to 0.1 %), so a change of 1-2 % to the bare view can be seen.

    python benchmarks/instructions.py [PATH] [--settings MODULE] [--pythonpath DIR]

It runs this file twice under ``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``: once with
500 and once with 2,500 requests after a warm-up of 2,000, and prints the difference divided by
2,000: what one more request costs, without the start-up. The request is what gunicorn hands the
application for ``GET PATH`` (default ``/bench/bare``, with ``benchmarks.bench_settings``), without
the server's own work. The environment is the caller's (``DATABASE_URL``, ``REDIS_URL``,
``LOG_LEVEL`` ...: as the peer run, ``LOG_LEVEL=WARNING``). Another project's view is measured the
same way: ``--settings hellopeer.settings --pythonpath ../shared/peers/peers/hello /hello/``.
About 4 minutes; needs valgrind (``apt install valgrind``).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

WARM_UP, FEW, MANY = 2000, 500, 2500


def serve(path: str, count: int) -> None:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    gc.collect()
    gc.freeze()  # as config.wsgi does

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith(("2", "3")):
            raise SystemExit(f"GET {path} answered {status}")

    for _ in range(WARM_UP + count):
        environ = {
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
            "RAW_URI": path, "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000",
            "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000"}
        response = application(environ, start_response)
        b"".join(response)
        response.close()


def count_instructions(args: argparse.Namespace, requests: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", DJANGO_SETTINGS_MODULE=args.settings)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.pythonpath, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
             "--serve", str(requests), args.path],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    if found is None:
        raise SystemExit("callgrind wrote no total")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default="/bench/bare")
    parser.add_argument("--settings", default=os.environ.get("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings"))
    parser.add_argument("--pythonpath", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.path, args.serve)
        return
    few, many = count_instructions(args, FEW), count_instructions(args, MANY)
    print(f"GET {args.path} ({args.settings}): {(many - few) / (MANY - FEW):,.0f} instructions a request")


if __name__ == "__main__":
    main()
