"""What the local sandbox costs: the same manifest run in-process and in a sandbox, in one run.

    .venv/bin/python bench/sandbox.py [--runs 7]

In-process means: this interpreter, modules already imported, the worker's `execute` called on a
prepared bundle folder. Sandboxed means what `osiris-action run` does: a fresh folder, the bundle
written and hashed, a child Python started with a scrubbed environment, events streamed back,
artifacts fetched. The difference is the sandbox's overhead per run (aim: under 0.3 s).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osiris_action import worker  # noqa: E402
from osiris_action.run import Run, RunOptions, prepare  # noqa: E402

PIPELINE = ROOT / "examples" / "quickstart" / "orders-summary.yaml"


def in_process(prepared) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = dict(prepared.bundle.files)
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        started = time.perf_counter()
        code = worker.execute(root, worker.Events("bench", stream=io.StringIO()))
        elapsed = time.perf_counter() - started
    assert code == 0, "in-process run failed"
    return elapsed


def sandboxed(prepared, out: Path) -> float:
    started = time.perf_counter()
    report = Run(prepared, RunOptions(out=out), on_progress=lambda _: None).execute()
    elapsed = time.perf_counter() - started
    assert report.status == "success", report.error
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    prepared = prepare(PIPELINE, RunOptions())
    prepared.bundle.seal()
    in_process(prepared)  # warm-up: imports, DuckDB and pyarrow initialisation
    a, b = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):  # paired A B A B, so machine noise hits both alike
            a.append(in_process(prepared))
            b.append(sandboxed(prepared, Path(tmp) / str(i)))
    ma, mb = statistics.median(a), statistics.median(b)
    print(
        f"pipeline: {PIPELINE.relative_to(ROOT)} ({len(prepared.manifest['steps'])} steps), "
        f"{args.runs} paired runs"
    )
    print(f"in-process (warm)      median {ma * 1000:8.1f} ms   min {min(a) * 1000:8.1f} ms")
    print(f"local sandbox          median {mb * 1000:8.1f} ms   min {min(b) * 1000:8.1f} ms")
    print(
        f"sandbox overhead       {(mb - ma) * 1000:8.1f} ms per run   (aim: < 300 ms)   ratio {mb / ma:.2f}x"
    )
    print(f"bytes uploaded per run {prepared.bundle.size:,} ({len(prepared.bundle.files)} files)")


if __name__ == "__main__":
    main()
