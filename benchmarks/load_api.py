"""Load test of ``POST /api/classify`` on a real ``python -m builder serve``.

    .venv/bin/python -m benchmarks.load_api [--bundle DIR] [--duration 60] [--clients 4] [--json OUT]

Starts the server as a subprocess (``--no-build``) on a free loopback port, waits for
``/api/health``, then runs N concurrent clients (threads, one keep-alive httpx client each) that
post utterances from a fixed list, round robin, for ``--duration`` seconds. Reports requests,
errors, throughput, latency percentiles (client-side, including HTTP and JSON on both ends), and
which tier answered; then stops the server by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from builder.bench.browser import start_serve
from builder.paths import default_bundle
from builder.serve.demo import DEMO_UTTERANCES

# Short, mixed utterances: most are answered by the BoW tier, some go on to the transformer
# (rephrasings, typos) and some end as "clarify" (out of scope).
UTTERANCES = DEMO_UTTERANCES + [
    "show me my recent trades",
    "list all my holdings",
    "which of my stocks did worst this month",
    "how did TSLA perform YTD",
    "what is my account worth",
    "how much cash can I withdraw",
    "quote for spy and qqq",
    "did my deposit go through",
    "my portoflio perfomance last month",
    "explain rebalancing to me like I'm five",
    "book me a table for two",
    "GME perf",
]
MAX_DURATION = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return start_serve(bundle, port, out)


def wait_ready(base: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(base + "api/health", timeout=2).json() == {"ok": True}:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{base}api/health did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    """Ctrl-C by PID (a clean shutdown), then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client_loop(base: str, offset: int, deadline: float, latencies: list[float], errors: Counter, tiers: Counter) -> None:
    n = offset
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.perf_counter() < deadline:
            text = UTTERANCES[n % len(UTTERANCES)]
            n += 1
            start = time.perf_counter()
            try:
                response = client.post("/api/classify", json={"text": text})
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    errors[f"HTTP {response.status_code}"] += 1
                    continue
                tiers[response.json()["tier"] or "clarify"] += 1
                latencies.append(elapsed)
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=default_bundle())
    parser.add_argument("--duration", type=float, default=60.0, help=f"seconds of load (1..{MAX_DURATION}, default 60)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (1..32, default 4)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not 1 <= args.duration <= MAX_DURATION or not 1 <= args.clients <= 32:
        parser.error(f"--duration must be 1..{MAX_DURATION} and --clients 1..32")
    if not (args.bundle / "manifest.json").is_file():
        parser.error(f"{args.bundle}: no bundle (build it with `python -m builder build`)")

    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"load_api-{port}.log"
    proc = start_server(args.bundle, port, log)
    try:
        wait_ready(base, proc, log)
        tiers_loaded = [t["name"] for t in httpx.get(base + "api/status").json()["tiers"] if t["available"]]
        with httpx.Client(base_url=base) as warm:  # the first calls of each tier are slow
            for text in UTTERANCES * 3:
                warm.post("/api/classify", json={"text": text}).raise_for_status()
        latencies: list[list[float]] = [[] for _ in range(args.clients)]
        errors: Counter = Counter()
        tiers: Counter = Counter()
        start = time.perf_counter()
        deadline = start + args.duration
        threads = [
            threading.Thread(target=client_loop, args=(base, i * 5, deadline, latencies[i], errors, tiers))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        stop_server(proc)

    values = sorted(v for per_client in latencies for v in per_client)
    if not values:
        raise SystemExit(f"no successful request ({dict(errors)}); server log: {log}")
    result = {
        "bundle": str(args.bundle),
        "tiers_loaded": tiers_loaded,
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "requests": len(values) + sum(errors.values()),
        "errors": dict(errors),
        "throughput_rps": round(len(values) / wall, 1),
        "latency_ms": {
            "p50": round(percentile(values, 0.50) * 1000, 2),
            "p90": round(percentile(values, 0.90) * 1000, 2),
            "p99": round(percentile(values, 0.99) * 1000, 2),
            "max": round(values[-1] * 1000, 2),
            "mean": round(statistics.fmean(values) * 1000, 2),
        },
        "answered_by": dict(tiers.most_common()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "server_exit_code": proc.returncode,
    }
    lat = result["latency_ms"]
    print(f"{args.clients} clients, {wall:.1f} s, tiers {', '.join(tiers_loaded)}; server exited with {proc.returncode}")
    print("| requests | errors | throughput | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {result['requests']:,} | {sum(errors.values())} | {result['throughput_rps']} req/s | "
          f"{lat['p50']} ms | {lat['p90']} ms | {lat['p99']} ms | {lat['max']} ms |")
    print("answered by: " + ", ".join(f"{k} {v / len(values):.1%}" for k, v in tiers.most_common()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
