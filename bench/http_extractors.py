"""What graphql.extractor and posthog.extractor cost above the HTTP floor, in one run.

    .venv/bin/python bench/http_extractors.py [--rows 50000] [--runs 3]

Both read from the local test servers (tests/integration/*_server.py). The floor is the same pages
fetched with httpx and decoded with json, nothing else: what any client pays. The driver adds the
Arrow columns (and for GraphQL the spill of each page to disk and the read back in one joined schema).
The ratio driver / floor is the cost of exact types; the servers' own time is in both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from osiris_drivers import graphql_extractor, posthog_extractor  # noqa: E402
from osiris_drivers._common import StepContext  # noqa: E402

from tests.integration.graphql_server import GraphqlServer  # noqa: E402
from tests.integration.posthog_server import PosthogServer  # noqa: E402

GQL_PAGE, PH_PAGE = 1000, 10000


def ctx(connection: dict) -> StepContext:
    folder = Path(tempfile.mkdtemp(prefix="bench-http-"))
    return StepContext(step_id="bench", connection=connection, artifacts_dir=folder, base_dir=folder)


def graphql_floor(url: str) -> int:
    rows, after = 0, None
    with httpx.Client() as client:
        while True:
            variables = {"first": GQL_PAGE} | ({"after": after} if after else {})
            data = client.post(url, json={"query": "{ orders }", "variables": variables}).json()
            page = data["data"]["orders"]
            rows += len(page["nodes"])
            if not page["pageInfo"]["hasNextPage"]:
                return rows
            after = page["pageInfo"]["endCursor"]


def graphql_driver(url: str) -> int:
    config = {
        "query": "{ orders }",
        "variables": {"first": GQL_PAGE},
        "pagination_enabled": True,
        "pagination_path": "data.orders.pageInfo",
        "data_path": "data.orders.nodes",
    }
    return (
        graphql_extractor.run({"id": "bench", "config": config}, {}, ctx({"endpoint": url}))
        .read_all()
        .num_rows
    )


def posthog_floor(url: str, key: str) -> int:
    connection = {"api_key": key, "project_id": "4242", "region": "self_hosted", "custom_base_url": url}
    reading = posthog_extractor._Reading(
        {"page_size": PH_PAGE, "initial_since": "2025-01-01T00:00:00Z"}, ctx(connection)
    )
    rows = 0
    with httpx.Client() as client:
        while True:
            sql, values = reading.query()
            body = {"query": {"kind": "HogQLQuery", "query": sql, "values": values}}
            answer = client.post(reading.url, json=body, headers=reading.headers).json()
            results = answer["results"]
            rows += len(results)
            if len(results) < PH_PAGE:
                return rows
            reading.after = (results[-1][2], results[-1][0])


def posthog_driver(url: str, key: str) -> int:
    connection = {"api_key": key, "project_id": "4242", "region": "self_hosted", "custom_base_url": url}
    config = {"page_size": PH_PAGE, "initial_since": "2025-01-01T00:00:00Z"}
    return posthog_extractor.run({"id": "bench", "config": config}, {}, ctx(connection)).read_all().num_rows


def best(runs: int, call) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = call()
        times.append(time.perf_counter() - started)
    return min(times), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    nodes = [
        {
            "id": f"o{i}",
            "n": i,
            "big": 2**60 + i,
            "total": {"amount": f"{i}.5", "cur": "EUR"},
            "tags": ["a", "b"],
        }
        for i in range(args.rows)
    ]
    base = datetime(2025, 6, 1, tzinfo=UTC)
    events = [
        {
            "uuid": str(uuid.UUID(int=i + 1)),
            "event": "$pageview",
            "timestamp": base + timedelta(microseconds=i * 7),
            "distinct_id": f"u{i % 100}",
            "person_id": None,
            "properties": {"$browser": "Firefox", "i": i},
        }
        for i in range(args.rows)
    ]
    key = "phx_" + "b" * 30
    with (
        GraphqlServer(nodes, default_page=GQL_PAGE) as gql,
        PosthogServer({"events": events}, api_key=key) as ph,
    ):
        for name, floor, driver in (
            ("graphql.extractor", lambda: graphql_floor(gql.url), lambda: graphql_driver(gql.url)),
            ("posthog.extractor", lambda: posthog_floor(ph.url, key), lambda: posthog_driver(ph.url, key)),
        ):
            floor_s, floor_rows = best(args.runs, floor)
            driver_s, driver_rows = best(args.runs, driver)
            assert floor_rows == driver_rows == args.rows, (floor_rows, driver_rows)
            print(
                f"{name}: {args.rows:,} rows  floor (httpx + json) {floor_s:.2f} s  driver {driver_s:.2f} s  "
                f"ratio {driver_s / floor_s:.2f}x  ({args.rows / driver_s:,.0f} rows/s)"
            )
    print(f"(best of {args.runs} runs each)")


if __name__ == "__main__":
    main()
