"""The local worker's interpreter: `python -P interpreter.py`, then one request line on stdin.

It imports the libraries every worker needs while it waits, reads one JSON line (the folder, the exact
environment and the argv of `python script args...`), and runs the uploaded script as `python script`
would: `__main__`, the script's folder first on sys.path (so the bundle's own modules are the ones that
run), the environment replaced. The environment arrives on stdin so that the secrets in it never show in
/proc/<pid>/environ. An empty stdin (the host ended first) ends it, and so does the end of the host
while the script runs: a worker outlives a killed host by a second at most.
"""

import json
import os
import runpy
import sys
import threading
import time

import duckdb  # noqa: F401  imported now, while the host still compiles
import pyarrow  # noqa: F401


def _end_with(host: int) -> None:
    while os.getppid() == host:  # a killed host's children are handed to another parent
        time.sleep(0.5)
    os._exit(137)


def main() -> None:
    threading.Thread(target=_end_with, args=(os.getppid(),), daemon=True).start()
    line = sys.stdin.readline()
    if not line:
        raise SystemExit(0)
    sys.stdin.close()
    request = json.loads(line)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = request["argv"]
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
