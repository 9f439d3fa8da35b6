"""Benchmark: the platform's gunicorn API vs a pandas+KMeans Flask app vs `mlflow models serve`.

One run: registers the catalog model in a fresh MLflow store (sqlite, tmp dir), then serves
it three ways with the same number of workers, one server at a time, and loads each with
`wrk` (Debian package `wrk`) at the same concurrency:
  - platform: `gunicorn -c python:persona.serving.gunicorn_config` (sync; also gthread),
  - baseline: benchmarks/baseline_app.py under gunicorn (DataFrame + KMeans.predict per request),
  - mlflow:   `mlflow models serve -m models:/persona-classifier@champion --env-manager local`.
Scenarios: one-record requests and 1,000-record requests. Reports req/s, rows/s, p50/p99
latency and non-2xx counts; writes benchmarks/out/serving.json.

Usage: python benchmarks/serving.py [--duration 10] [--workers 2] [--concurrency 32]
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
from pathlib import Path
from typing import Any

import numpy as np
from _provenance import begin, finish

from persona.serving import launch
from persona.serving.launch import Server

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FEATURES = [f"x{i}" for i in range(1, 11)]


def register_model(tmp: Path) -> dict[str, str]:
    import mlflow

    from persona.catalog import load_catalog
    from persona.model import from_catalog, model_to_dict
    from persona.pyfunc import log_pyfunc
    from persona.registry.tracking import client, configure
    from persona.registry.versions import register
    from persona.settings import load_settings

    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        "MLFLOW_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
        "DATABASE_URL": f"sqlite:///{tmp}/persona.db",
        "PERSONA_CATALOG": str(REPO / "01_model" / "personas.yaml"),
    }
    settings = load_settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    model = from_catalog(load_catalog(settings.persona_catalog), np.full(3, 12.0))
    exp_id = configure(settings)
    mlc = client(settings)
    with tempfile.TemporaryDirectory() as work, mlflow.start_run(experiment_id=exp_id) as run:
        info = log_pyfunc(model, work)
    name = settings.model_name
    register(mlc, name, info, run.info.run_id, {"kind": "catalog"},
             lambda mv: mlc.set_registered_model_alias(name, "champion", mv.version))  # fmt: skip
    (tmp / "persona_model.json").write_text(json.dumps(model_to_dict(model)))
    env["BASELINE_MODEL_JSON"] = str(tmp / "persona_model.json")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path, url: str) -> Server:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow execs `uvicorn`
    return launch.start(command, url, env={**os.environ, **env, "PATH": path}, cwd=cwd, log=log)


def wait_ok(server: Server, path: str, body: bytes) -> None:
    """Wait until one POST of `body` answers 200 (the model is loaded)."""
    try:
        server.wait(path, timeout_s=120, method="POST", body=body, interval_s=0.5,
                    headers={"Content-Type": "application/json"})  # fmt: skip
    except launch.LaunchError as exc:
        raise SystemExit(str(exc)) from None


def wrk(url: str, body_file: Path, seconds: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    threads = min(2, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--latency",
               "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def parse_wrk(out: str) -> dict[str, Any]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, flags=re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": total,
        "req_per_s": rps,
        "p50_ms": _ms(lat["50"]),
        "p99_ms": _ms(lat["99"]),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def bodies(tmp: Path) -> dict[str, dict[str, Path]]:
    from persona.catalog import load_catalog

    catalog = load_catalog(REPO / "01_model" / "personas.yaml")
    rng = np.random.default_rng(0)
    centroids = catalog.centroids()
    out: dict[str, dict[str, Path]] = {}
    for n in (1, 1000):
        rows = centroids[rng.integers(0, len(centroids), n)] + rng.normal(0, 2, (n, 10))
        records = [dict(zip(FEATURES, map(float, r), strict=True)) for r in rows]
        out[str(n)] = {}
        for kind, payload in (("records", records), ("mlflow", {"dataframe_records": records})):
            path = tmp / f"body_{n}_{kind}.json"
            path.write_text(json.dumps(payload))
            out[str(n)][kind] = path
    return out


def servers(env: dict[str, str], workers: int) -> list[dict[str, Any]]:
    gunicorn = str(BIN / "gunicorn")
    ours = launch.gunicorn_command()
    common = ["--no-control-socket", "-w", str(workers), "--log-level", "warning"]
    return [
        {"name": "platform (sync)", "kind": "records", "path": "/predict",
         "cmd": lambda port: ours,
         "env": {"GUNICORN_WORKER_CLASS": "sync"}},
        {"name": "platform (gthread x4)", "kind": "records", "path": "/predict",
         "cmd": lambda port: ours,
         "env": {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_THREADS": "4"}},
        {"name": "baseline (sync)", "kind": "records", "path": "/predict",
         "cmd": lambda port: [gunicorn, *common, "-b", f"127.0.0.1:{port}",
                              "--chdir", str(REPO / "benchmarks"), "baseline_app:app"],
         "env": {}},
        {"name": "baseline (gthread x4)", "kind": "records", "path": "/predict",
         "cmd": lambda port: [gunicorn, *common, "-b", f"127.0.0.1:{port}", "-k", "gthread",
                              "--threads", "4", "--chdir", str(REPO / "benchmarks"),
                              "baseline_app:app"],
         "env": {}},
        {"name": "mlflow models serve", "kind": "mlflow", "path": "/invocations",
         "cmd": lambda port: [str(BIN / "mlflow"), "models", "serve", "-m",
                              "models:/persona-classifier@champion", "--env-manager", "local",
                              "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)],
         "env": {}},
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    provenance = begin()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix="persona-bench-serving-"))
    env = register_model(tmp)
    env.update({"API_WORKERS": str(args.workers), "API_HOST": "127.0.0.1", "API_TOKEN": "",
                "MODEL_RELOAD_INTERVAL_S": "30", "MODEL_STARTUP_WAIT_S": "25"})  # fmt: skip
    files = bodies(tmp)
    results: list[dict[str, Any]] = []
    for server in servers(env, args.workers):
        port = free_port()
        log = tmp / f"{len(results)}.log"
        base = f"http://127.0.0.1:{port}"
        running = start(server["cmd"](port), {**env, **server["env"], "API_PORT": str(port)},
                        tmp, log, base)  # fmt: skip
        url = base + server["path"]
        try:
            wait_ok(running, server["path"], files["1"][server["kind"]].read_bytes())
            for n in ("1", "1000"):
                wrk(url, files[n][server["kind"]], 2, args.concurrency, tmp)  # warm-up
                row = wrk(url, files[n][server["kind"]], args.duration, args.concurrency, tmp)
                row.update(server=server["name"], records_per_request=int(n))
                row["rows_per_s"] = row["req_per_s"] * int(n)
                results.append(row)
                print(f"{server['name']:<24} n={n:<5} {row['req_per_s']:>9.0f} req/s "
                      f"{row['rows_per_s']:>10.0f} rows/s p50 {row['p50_ms']:.2f} ms "
                      f"p99 {row['p99_ms']:.2f} ms non-2xx {row['non_2xx']}",
                      flush=True)  # fmt: skip
        finally:
            running.stop()
    report(results, args, tmp, provenance)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: list[dict[str, Any]], args: Any, tmp: Path, provenance: dict[str, Any]) -> None:
    def get(name: str, n: int) -> dict[str, Any]:
        return next(r for r in results if r["server"] == name and r["records_per_request"] == n)

    ratios = {}
    for n in (1, 1000):
        ours = max((get(s, n) for s in ("platform (sync)", "platform (gthread x4)")),
                   key=lambda r: r["req_per_s"])  # fmt: skip
        ratios[f"n={n}"] = {
            "best_platform": ours["server"],
            "vs_baseline": ours["req_per_s"]
            / max(get(b, n)["req_per_s"] for b in ("baseline (sync)", "baseline (gthread x4)")),
            "vs_mlflow": ours["req_per_s"] / get("mlflow models serve", n)["req_per_s"],
        }
    print("\nserver                   n      req/s      rows/s   p50 ms   p99 ms  non-2xx")
    for r in results:
        print(f"{r['server']:<24} {r['records_per_request']:<5} {r['req_per_s']:>9.0f} "
              f"{r['rows_per_s']:>11.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['non_2xx'] + r['socket_errors']:>8}")  # fmt: skip
    for key, value in ratios.items():
        print(f"{key}: {value['best_platform']} = {value['vs_baseline']:.2f}x best baseline, "
              f"{value['vs_mlflow']:.2f}x mlflow models serve")  # fmt: skip
    out = {
        "benchmark": "serving",
        "workers": args.workers,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "client": "wrk (Debian package wrk 4.1)",
        "cpu_count": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "python": platform.python_version(),
        "results": results,
        "ratios": ratios,
    }
    path = REPO / "benchmarks" / "out" / "serving.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    out["provenance"] = finish(provenance)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
