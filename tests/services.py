"""Make sure the MariaDB and PostgreSQL servers the tests use are up, starting them when installed.

Run by `make test` before pytest. On a machine without the servers it says what to install; in CI
(CI=true) a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVERS = {
    "PostgreSQL": (5432, "postgresql"),
    "MariaDB": (3306, "mariadb-server"),
}


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _start(name: str) -> None:
    if name == "PostgreSQL" and Path("/etc/postgresql").is_dir():
        for version in sorted(os.listdir("/etc/postgresql")):
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False
            )
    elif name == "MariaDB" and Path("/usr/sbin/mariadbd").exists():
        Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
        if _has_user("mysql"):
            shutil.chown("/run/mysqld", user="mysql")
        subprocess.run(
            ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd"],
            check=False,
        )


def _has_user(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def main() -> int:
    missing = []
    for name, (port, package) in SERVERS.items():
        if _up(port):
            continue
        _start(name)
        for _ in range(60):
            if _up(port):
                break
            time.sleep(0.5)
        else:
            missing.append((name, port, package))
    for name, port, package in missing:
        print(
            f"{name} is not answering on 127.0.0.1:{port}. Install and start it: "
            f"apt-get install -y {package}, then rerun.",
            file=sys.stderr,
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
