"""`make demo`: the whole product on the embedded default (SQLite + local MLflow under var/).

1. generate Jan-May 2025 (March drifted) and ingest it (`persona data generate/ingest`);
2. register the catalog model as champion (`persona model bootstrap`);
3. run the monthly cycle for every month in order (label, monitor, retrain on drift,
   gate, promote, alert) — `persona.flows.run_year`;
4. serve the champion with gunicorn on API_HOST:API_PORT (127.0.0.1:8000) and send sample
   predictions over REST (`/predict`, and the original study's `/compat/predict`);
5. print one summary table and where to look.

Rerunnable: every step is idempotent, so a second run writes nothing new.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]
BIN = Path(sys.executable).parent
# Longest wait for the demo's gunicorn to answer /ready: about 10 s on a quiet 2-core
# machine (workers import MLflow and load the champion), x4 and more for a busy one.
READY_BUDGET_S = 180.0
# Wide enough for the summary table when the output is piped (rich defaults to 80 then).
console = Console() if sys.stdout.isatty() else Console(width=140)


def persona(*args: str) -> dict[str, Any]:
    """Run a `persona` command with --json and return its document (fail loudly)."""
    cmd = [str(BIN / "persona"), *args, "--json"]
    console.print(f"[dim]$ persona {' '.join(args)}[/]")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"demo: `persona {' '.join(args)}` failed (exit {proc.returncode})")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def check_port_free(host: str, port: int) -> None:
    """Fail with a clear message when API_HOST:API_PORT is taken (e.g. by `make serve`)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"demo: cannot serve on {host}:{port} ({exc.strerror}); stop what listens "
                "there or set API_PORT to a free port"
            ) from None


def sample_records(settings: Any, month: str, n: int = 3) -> list[dict[str, float]]:
    from persona.features import FEATURE_NAMES
    from persona.store import survey_queries
    from persona.store.engine import open_store

    engine = open_store(settings.database_url)
    try:
        frame = survey_queries.load_month(engine, month).head(n)
    finally:
        engine.dispose()
    return [{f: float(row[f]) for f in FEATURE_NAMES} for _, row in frame.iterrows()]


def serve_and_predict(settings: Any, records: list[dict[str, float]]) -> dict[str, Any]:
    """Start gunicorn briefly on API_HOST:API_PORT, wait for /ready, POST /predict, stop it."""
    from persona.serving.launch import LaunchError, start_gunicorn

    host, port = settings.api_host, settings.api_port
    check_port_free(host, port)
    env = {**os.environ, "API_PORT": str(port), "API_HOST": host, "API_WORKERS": "1"}
    base = f"http://{host}:{port}"
    # Run from the repo root (like `make serve`) so relative settings such as the embedded
    # sqlite:///var/mlflow.db resolve to the same files the cycle wrote.
    server = start_gunicorn(base, env=env, cwd=REPO)  # own process group
    try:
        try:
            server.wait("/ready", timeout_s=READY_BUDGET_S, interval_s=0.5)
        except LaunchError:
            raise SystemExit(f"demo: gunicorn did not become ready on {base}") from None
        headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
        resp = requests.post(f"{base}/predict", json=records, headers=headers, timeout=10)
        resp.raise_for_status()
        # The original study's client body: records keyed "0".."9" (docs/migration.md).
        legacy = [{str(i): v for i, v in enumerate(r.values())} for r in records]
        old = requests.post(f"{base}/compat/predict", json=legacy, headers=headers, timeout=10)
        old.raise_for_status()
        return {"url": base, "response": resp.json(), "compat": old.json()}
    finally:
        server.stop()


def mix_text(mix: dict[str, int]) -> str:
    total = sum(mix.values()) or 1
    ranked = sorted(mix.items(), key=lambda item: -item[1])
    return ", ".join(f"{pid} {n / total:.0%}" for pid, n in ranked)


def summary_table(summaries: list[dict[str, Any]]) -> Table:
    table = Table(title="PersonaOps demo: the monthly cycle, Jan-May 2025")
    for col in ("month", "rows", "verdict", "model", "challenger", "persona mix"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for s in summaries:
        before, after = s["model_version_before"], s["model_version_after"]
        model = f"v{before}" if before == after else f"v{before} -> v{after}"
        challenger = "-"
        if s["challenger_version"]:
            state = "promoted" if s["promoted"] else "awaiting review"
            challenger = f"v{s['challenger_version']} {state}"
        table.add_row(
            s["month"], str(s["rows"]), s["verdict"], model, challenger, mix_text(s["persona_mix"])
        )
    return table


def main() -> None:
    os.chdir(REPO)
    from persona.errors import PersonaError
    from persona.flows import run_year
    from persona.months import Month
    from persona.settings import get_settings

    try:
        settings = get_settings()
    except PersonaError as exc:  # a bad setting: one line, exit 2, like the persona CLI
        print(f"demo: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    started = time.monotonic()
    console.rule("1. data: generate + ingest Jan-May 2025 (March drifted)")
    generated = persona("data", "generate")
    ingested = persona("data", "ingest", generated["out"])
    new_rows = sum(f.get("rows_new", 0) for f in ingested.get("files", []))
    console.print(f"{len(generated['months'])} months generated, {new_rows} new rows ingested")
    console.rule("2. bootstrap: the catalog model becomes champion v1")
    boot = persona("model", "bootstrap")
    console.print(f"champion v{boot['version']} ({'created' if boot['created'] else 'exists'})")
    console.rule("3. the monthly cycle, month by month")
    summaries = [s.to_dict() for s in run_year(settings, [Month(m) for m in MONTHS], "demo")]
    console.rule("4. serving: gunicorn + REST predictions with the champion")
    served = serve_and_predict(settings, sample_records(settings, MONTHS[-1]))
    console.print(f"POST {served['url']}/predict ->")
    console.print_json(json.dumps(served["response"])[:3000])
    console.print(f"POST {served['url']}/compat/predict (the original client's body) ->")
    console.print_json(json.dumps(served["compat"]))
    console.rule("summary")
    console.print(summary_table(summaries))  # the alert itself was logged once, in step 3
    console.print(
        "\nWhere to look:\n"
        "  MLflow UI (runs, versions, aliases):  make mlflow-ui  -> "
        f"http://127.0.0.1:{os.environ.get('MLFLOW_PORT', '5000')}\n"
        f"  drift reports (HTML):                 {settings.reports_dir}/\n"
        "  Evidently UI (monthly checks):        make evidently-ui -> "
        f"http://127.0.0.1:{settings.evidently_port}\n"
        f"  survey store + labels + runs:         {settings.database_url}\n"
        "  one month again:                      make run-month MONTH=2025-03\n"
        "  serve the API:                        make serve   (then make predict)\n"
        f"done in {time.monotonic() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
