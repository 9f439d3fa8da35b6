"""Benchmark: the fault matrix of docs/reliability.md (issue 12), on real processes.

    python benchmarks/reliability.py [--quick]

Rows (each compared with its baseline in the same run where one exists):
  1. slow clients: good one-record clients (urllib, c=4) while 0 or 64 slow connections
     (32 slow-header + 32 slow-body) are held against gunicorn alone (`make serve`
     defaults, 2 sync workers): the baseline that section 7 compares the stack's nginx with;
  2. one-record p99 under wrk at c=32 against gunicorn alone (the docs/performance.md
     target: p99 <= 15 ms);
  3. time to `/health` 200, to the first `/ready` answer, and to the registry error shown
     in `/ready`, with MLflow refusing connections and with MLflow accepting but never
     answering; time to `/ready` 200 from the local model cache;
  4. time to a clean CLI error (exit 2, one message) with MLflow or PostgreSQL refusing or
     frozen, default settings; a stalled statement ended by PG_STATEMENT_TIMEOUT_S;
  5. concurrent first use: rounds of 4 parallel `persona data months` on a new store;
  6. hostile requests: share answered with a JSON 4xx by gunicorn alone (through the
     stack's nginx: tests/e2e/test_containers.py).
  7. the compose stack (`--stack-url`, the published API port of `make up`; its API_TOKEN
     from the environment, or `--stack-token`): good one-record clients (c=4) while 0 and
     64 slow connections (32 slow-header + 32 slow-body) are held against the stack's nginx.
     Without `--stack-url` the last run's stack figures are kept.
Sections 1, 2 and 6 start gunicorn alone locally (the embedded default); nginx figures come
only from section 7, against the stack's own nginx service. Writes
benchmarks/out/reliability.json (with its provenance) and prints the markdown table of the doc.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _pg import scratch_database  # noqa: E402
from _provenance import begin, finish  # noqa: E402

from tests.faults import (  # noqa: E402
    BIN,
    RECORD,
    good_latencies,
    http,
    open_slow_clients,
    refused_port,
    run_cli,
    silent_listener,
    start_api,
    wait_for,
    write_model_folder,
)

OUT = REPO / "benchmarks" / "out" / "reliability.json"
JSON = {"Content-Type": "application/json"}
LIMIT = 20_000
# Local rows are gunicorn alone. Runs from before nginx became the stack's own service
# wrote "none" for gunicorn alone and "nginx" for the in-process front that no longer exists.
LOCAL = "gunicorn"
OLD_NAMES = {"none": LOCAL}


def load() -> str:
    """The 1/5/15-minute load average (the machine is shared: every figure needs it)."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def local_env(model: Path, **extra: str) -> dict[str, str]:
    return {
        "MODEL_URI": str(model),
        "API_MAX_BODY_BYTES": str(LIMIT),
        "MODEL_STARTUP_WAIT_S": "25",
        **extra,
    }


def slow_clients(tmp: Path, model: Path, quick: bool) -> list[dict[str, Any]]:
    rows = []
    requests_ = 40 if quick else 120
    api = start_api(tmp / "slow", local_env(model))
    try:
        wait_for(api, "/ready", 120, want=200)
        for held in (0, 64):
            slow = []
            if held:
                slow = open_slow_clients(api.port, held // 2, "header")
                slow += open_slow_clients(api.port, held // 2, "body")
                time.sleep(0.5)
            good = good_latencies(api.url, requests_, 4, timeout=5.0)
            for conn in slow:
                conn.close()
            rows.append({"front": LOCAL, "slow_held": held, **good, "load": load()})
            print(f"slow clients, gunicorn alone, held={held}: {good}", flush=True)
            time.sleep(1)
        rows[-1]["worker_timeouts"] = api.log.read_text().count("WORKER TIMEOUT")
    finally:
        api.stop()
    return rows


def _good_clients(url: str, headers: dict[str, str], per_thread: int) -> dict[str, Any]:
    """One-record POSTs from 4 threads: latency percentiles and errors."""
    import threading

    body = json.dumps([RECORD]).encode()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(per_thread):
            start = time.perf_counter()
            try:
                status: object = http("POST", url + "/predict", body, headers, 5.0)[0]
            except OSError as exc:
                status = type(exc).__name__
            with lock:
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors.append(str(status))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }


def stack_slow_clients(url: str, token: str, quick: bool) -> list[dict[str, Any]]:
    """Section 7: good clients' latency with 0 and 64 slow connections held on the stack."""
    import urllib.parse

    port = urllib.parse.urlparse(url).port or 80
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    rows = []
    for held in (0, 64):
        slow = []
        if held:
            slow = open_slow_clients(port, held // 2, "header")
            slow += open_slow_clients(port, held // 2, "body")
            time.sleep(0.5)
        good = _good_clients(url, headers, 30 if quick else 60)
        for conn in slow:
            conn.close()
        row = {"front": "stack nginx", "slow_held": held, **good, "load": load()}
        rows.append(row)
        print(f"stack slow clients held={held}: {row}", flush=True)
        time.sleep(1)
    return rows


def wrk_p99(tmp: Path, model: Path, seconds: int) -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        return [{"skipped": "wrk not installed (make bench installs it)"}]
    body = tmp / "one.json"
    body.write_text(json.dumps([RECORD]))
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    api = start_api(tmp / "wrk", local_env(model))
    try:
        wait_for(api, "/ready", 120, want=200)
        runs = []
        for duration in (2, seconds):  # warm-up, then the measured run
            out = subprocess.run(
                ["wrk", "-t2", "-c32", f"-d{duration}s", "--latency", "--timeout", "10s",
                 "-s", str(script), api.url + "/predict"],
                capture_output=True, text=True, check=True, timeout=duration + 60,
            ).stdout  # fmt: skip
            runs.append(parse_wrk(out))
        print(f"wrk c=32, gunicorn alone: {runs[-1]}", flush=True)
    finally:
        api.stop()
    return [{"front": LOCAL, **runs[-1], "load": load()}]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def parse_wrk(out: str) -> dict[str, Any]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, flags=re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "req_per_s": rps,
        "p50_ms": _ms(lat["50"]),
        "p99_ms": _ms(lat["99"]),
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(map(int, errors.groups())) if errors else 0),
    }


def mlflow_faults(tmp: Path, model: Path) -> list[dict[str, Any]]:
    rows = []
    for fault in ("refused", "frozen", "refused+cache"):
        with silent_listener() as frozen_port:
            port = frozen_port if fault == "frozen" else refused_port()
            folder = tmp / f"mlflow-{fault.replace('+', '-')}"
            env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}  # default bounds
            if fault.endswith("cache"):
                from persona.model import LoadedModel, read_model_folder
                from persona.serving.source import FileModelCache

                local = read_model_folder(model)
                cached = LoadedModel(local, "persona-classifier", "7", "champion", "x", {})
                key = "models:/persona-classifier@champion"
                FileModelCache(folder / "var" / "model-cache", key).save(cached)
            api = start_api(folder, env)
            try:
                health, _ = wait_for(api, "/health", 60, want=200)
                ready_at, status = wait_for(api, "/ready", 60)
                asked = time.monotonic()
                api.get("/ready")
                ready_latency = time.monotonic() - asked
                error_at = None
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not fault.endswith("cache"):
                    _, body = api.get("/ready")
                    if body.get("last_error"):
                        error_at = time.monotonic() - api.started
                        break
                    time.sleep(0.25)
                row = {
                    "mlflow": fault,
                    "health_s": round(health, 2),
                    "first_ready_s": round(ready_at, 2),
                    "ready_status": status,
                    "ready_answer_ms": round(ready_latency * 1000, 1),
                    "error_shown_s": round(error_at, 1) if error_at else None,
                    "load": load(),
                }
            finally:
                api.stop()
        rows.append(row)
        print(f"mlflow {fault}: {row}", flush=True)
    return rows


def cli_faults(tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for dependency in ("mlflow", "postgres"):
        for fault in ("refused", "frozen"):
            with silent_listener() as frozen_port:
                port = frozen_port if fault == "frozen" else refused_port()
                if dependency == "mlflow":
                    args = ["model", "list"]
                    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
                else:
                    args = ["data", "months"]
                    env = {"DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{port}/x"}
                code, _, err, seconds = run_cli(args, env, tmp, timeout=300)
            rows.append(
                {
                    "dependency": dependency,
                    "fault": fault,
                    "command": "persona " + " ".join(args),
                    "exit": code,
                    "seconds": round(seconds, 1),
                    "error_lines": err.count("error:"),
                    "traceback": "Traceback" in err,
                    "load": load(),
                }
            )
            print(f"cli {dependency} {fault}: {rows[-1]}", flush=True)
    rows.append(statement_timeout())
    return rows


def statement_timeout() -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from persona.store.engine import make_engine

    with scratch_database("bench_rel") as (_, url):
        engine = make_engine(url, connect_timeout_s=10, statement_timeout_s=2.0)
        started = time.monotonic()
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(60)"))
            ended = "finished"
        except OperationalError as exc:
            ended = "statement timeout" if "statement timeout" in str(exc) else str(exc)[:80]
        engine.dispose()
    row = {
        "dependency": "postgres",
        "fault": "stalled statement (pg_sleep 60 s)",
        "command": "PG_STATEMENT_TIMEOUT_S=2",
        "exit": ended,
        "seconds": round(time.monotonic() - started, 1),
        "load": load(),
    }
    print(f"statement timeout: {row}", flush=True)
    return row


def first_use(tmp: Path, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for store in ("sqlite", "postgres"):
        ok = failed = 0
        messages: set[str] = set()
        for round_ in range(rounds):
            with scratch_database("bench_first") as (_, pg_url):
                url = pg_url if store == "postgres" else f"sqlite:///{tmp}/first{round_}/p.db"
                procs = [
                    subprocess.Popen(
                        [str(BIN / "persona"), "data", "months", "--json"],
                        cwd=tmp,
                        env={**os.environ, "DATABASE_URL": url},
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(4)
                ]
                for proc in procs:
                    _, err = proc.communicate(timeout=300)
                    if proc.returncode == 0:
                        ok += 1
                    else:
                        failed += 1
                        messages.add(err.strip().splitlines()[-1][:120] if err.strip() else "?")
        rows.append({"store": store, "rounds": rounds, "processes": 4 * rounds, "ok": ok,
                     "failed": failed, "errors": sorted(messages), "load": load()})  # fmt: skip
        print(f"first use {store}: {rows[-1]}", flush=True)
    return rows


HOSTILE: list[tuple[str, bytes]] = [
    ("surrogate in a key", b'[{"\\ud800": 1}]'),
    ("surrogate top-level key", b'{"\\udfff": []}'),
    ("surrogate in a value", b'[{"x1": "\\ud800"}]'),
    ("over-limit body, sent whole (urllib)", b"[" + b" " * (LIMIT * 50) + b"]"),
    ("over-limit body, just over", b"[" + b" " * LIMIT + b"]"),
]
RAW: list[tuple[str, bytes]] = [
    ("malformed chunk size", b"Transfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n"),
    ("negative Content-Length", b"Content-Length: -5\r\n\r\n[]"),
    ("Content-Length not a number", b"Content-Length: abc\r\n\r\n[]"),
]


# A body shorter than announced is a client that stalls: the app answers it with a 408
# within API_CLIENT_TIMEOUT_S (nginx, in the stack, closes such a connection instead).
# Reported apart from the JSON-4xx cases.
STALLED = b"Transfer-Encoding: chunked\r\n\r\n10\r\n[]\r\n0\r\n\r\n"


def hostile(tmp: Path, model: Path) -> list[dict[str, Any]]:
    api = start_api(tmp / "hostile", local_env(model))
    cases: list[dict[str, Any]] = []
    try:
        wait_for(api, "/ready", 120, want=200)
        for name, body in HOSTILE:
            try:
                status, answer = http("POST", api.url + "/predict", body, JSON, timeout=20)
                json_ok = not answer.get("not_json") and "error" in answer
            except OSError as exc:
                status, json_ok = f"client error: {type(exc).__name__}", False
            cases.append({"case": name, "status": status, "json": json_ok})
        for name, headers in RAW:
            request = (
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\n" + headers
            )
            answer = _raw(api.port, request)
            head, _, payload = answer.partition(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            try:
                json_ok = "error" in json.loads(payload)
            except ValueError:
                json_ok = False
            cases.append({"case": name, "status": status_line[9:12], "json": json_ok})
        asked = time.monotonic()
        answer = _raw(api.port, b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n" + STALLED)  # fmt: skip
        stalled = {
            "answer": answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed",
            "seconds": round(time.monotonic() - asked, 1),
        }
        good, _ = http("POST", api.url + "/predict", json.dumps([RECORD]).encode(), JSON)
    finally:
        api.stop()
    handled = sum(1 for c in cases if str(c["status"]).startswith("4") and c["json"])
    print(f"hostile, gunicorn alone: {handled}/{len(cases)} json 4xx; {cases}", flush=True)
    return [{"front": LOCAL, "cases": cases, "json_4xx": handled, "total": len(cases),
             "stalled_body": stalled, "still_serving": good == 200, "load": load()}]  # fmt: skip


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def local_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows measured on gunicorn alone, old runs' names ("none") made current.

    Rows of the in-process nginx front of older runs ("nginx") are dropped: that front is
    gone, and nginx is measured only as the stack's own service (section 7).
    """
    named = ({**row, "front": OLD_NAMES.get(row.get("front", LOCAL), row.get("front"))}
             for row in rows)  # fmt: skip
    return [row for row in named if row["front"] == LOCAL]


def table(results: dict[str, Any]) -> str:
    lines = ["| fault | measured | baseline / target | holds |", "|---|---|---|---|"]
    slow = {r["slow_held"]: r for r in local_rows(results.get("slow_clients", []))}
    if 0 in slow and 64 in slow:
        b0, b64 = slow[0], slow[64]
        lines.append(
            f"| 64 slow clients held (32 header + 32 body), good clients c=4, gunicorn alone "
            f"| p99 {b64['p99_ms']} ms, {b64['errors']}/{b64['requests']} errors (p99 "
            f"{b0['p99_ms']} ms with none held) | baseline of the stack's nginx row: slow "
            f"clients hold the 2 sync workers | — (baseline) |"
        )
    for row in local_rows(results.get("wrk", [])):
        if "p99_ms" in row:
            lines.append(
                f"| one record, wrk c=32, gunicorn alone | p99 {row['p99_ms']:.1f} ms, "
                f"{row['req_per_s']:,.0f} req/s, {row['errors']} errors | p99 <= 15 ms | "
                f"{'yes' if row['p99_ms'] <= 15 else 'NO'} |"
            )
    for row in results.get("mlflow", []):
        error = (
            f", registry error shown at {row['error_shown_s']} s" if row["error_shown_s"] else ""
        )
        lines.append(
            f"| API start, MLflow {row['mlflow']} | /health 200 at {row['health_s']} s; first "
            f"/ready ({row['ready_status']}) at {row['first_ready_s']} s, answered in "
            f"{row['ready_answer_ms']} ms{error} | /health <= 2 s; before: nothing for 250 s | "
            f"{'yes' if row['health_s'] <= 2 else 'slower (load)'} |"
        )
    for row in results.get("cli", []):
        if "error_lines" in row:
            clean = row["exit"] == 2 and row["error_lines"] == 1 and not row["traceback"]
            lines.append(
                f"| `{row['command']}`, {row['dependency']} {row['fault']} | exit {row['exit']}"
                f" in {row['seconds']} s, {row['error_lines']} error line, traceback: "
                f"{'yes' if row['traceback'] else 'no'} | exit 2, one line, <= 30 s; before: "
                f"250 s, exit 1, 382 lines | {'yes' if clean and row['seconds'] <= 30 else 'NO'} |"
            )
        else:
            lines.append(
                f"| PostgreSQL {row['fault']} | ended by {row['exit']} after {row['seconds']} s "
                f"| {row['command']} | {'yes' if row['exit'] == 'statement timeout' else 'NO'} |"
            )
    for row in results.get("first_use", []):
        lines.append(
            f"| {row['processes']} first commands on a new {row['store']} store, 4 at a time "
            f"| {row['ok']} ok, {row['failed']} failed | before: 2/3 (SQLite), 7/10 (PG) runs "
            f"failed | {'yes' if row['failed'] == 0 else 'NO'} |"
        )
    for row in local_rows(results.get("hostile", [])):
        bad = [f"{c['case']}: {c['status']}" for c in row["cases"]
               if not (str(c["status"]).startswith("4") and c["json"])]  # fmt: skip
        lines.append(
            f"| hostile requests, gunicorn alone | {row['json_4xx']}/{row['total']} JSON "
            f"4xx{' (not: ' + '; '.join(bad) + ')' if bad else ''}, still serving: "
            f"{row['still_serving']} | all JSON 4xx | "
            f"{'yes' if row['json_4xx'] == row['total'] else 'NO'} |"
        )
        stalled = row.get("stalled_body")
        if stalled:
            lines.append(
                f"| chunked body shorter than announced (client stalls), gunicorn alone "
                f"| {stalled['answer']} after {stalled['seconds']} s | 408 or closed within "
                f"API_CLIENT_TIMEOUT_S (10 s) | {'yes' if stalled['seconds'] < 15 else 'NO'} |"
            )
    if results.get("stack"):
        st = {r["slow_held"]: r for r in results["stack"]}
        s0, s64 = st[0], st[64]
        baseline = (f" (gunicorn alone: {slow[64]['errors']}/{slow[64]['requests']} errors)"
                    if 64 in slow else "")  # fmt: skip
        lines.append(
            f"| 64 slow clients held against the compose stack (its nginx), good clients c=4 | "
            f"p99 {s64['p99_ms']} ms, {s64['errors']}/{s64['requests']} errors (p99 "
            f"{s0['p99_ms']} ms with none held; load {s64['load']}) | 0 errors{baseline} | "
            f"{'yes' if s64['errors'] == 0 else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--stack-url", default="", help="the compose stack's API (nginx) URL")
    parser.add_argument(
        "--stack-token",
        default=os.environ.get("API_TOKEN", ""),
        help="the stack's API_TOKEN (default: $API_TOKEN)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections to rerun (slow_clients, wrk, mlflow, cli, first_use, "
        "hostile, stack); the others are kept from the last benchmarks/out/reliability.json",
    )
    args = parser.parse_args()
    provenance = begin()
    started = time.time()
    only = {s for s in args.only.split(",") if s}
    previous: dict[str, Any] = json.loads(OUT.read_text()) if OUT.is_file() else {}
    # Sections not rerun keep their last figures: every other one with --only, and the
    # stack's (which needs a running stack) without --stack-url.
    kept = previous if only else {"stack": previous.get("stack")}
    results: dict[str, Any] = {k: v for k, v in kept.items() if v is not None}
    results["load_at_start"] = load()
    with tempfile.TemporaryDirectory(prefix="persona-reliability-") as name:
        tmp = Path(name)
        model = write_model_folder(tmp / "model")
        sections = {
            "slow_clients": lambda: slow_clients(tmp, model, args.quick),
            "wrk": lambda: wrk_p99(tmp, model, 5 if args.quick else args.wrk_seconds),
            "mlflow": lambda: mlflow_faults(tmp, model),
            "cli": lambda: cli_faults(tmp),
            "first_use": lambda: first_use(tmp, 3 if args.quick else 10),
            "hostile": lambda: hostile(tmp, model),
        }
        if args.stack_url:
            sections["stack"] = lambda: stack_slow_clients(
                args.stack_url, args.stack_token, args.quick
            )
        for section, run in sections.items():
            if not only or section in only:
                results[section] = run()
    results.update(
        {
            "load_at_end": load(),
            "seconds": round(time.time() - started),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        }
    )
    results["provenance"] = finish(provenance)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))
    print(f"\nload average at start {results['load_at_start']}, at end {results['load_at_end']}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
