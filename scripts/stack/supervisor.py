"""`make up` / `make down` / `make status`: the compose stack as local processes.

    python scripts/stack/supervisor.py up [service ...]     # start (idempotent), wait ready
    python scripts/stack/supervisor.py down [service ...]   # stop exactly what up started
    python scripts/stack/supervisor.py status [--json]
    python scripts/stack/supervisor.py env [--json]         # client settings for the stack

Services (in start order): postgres (STACK_PG=shared: the machine's server, databases
created if missing; STACK_PG=private: a cluster under $VAR_DIR/pg run as user postgres),
gcs (gcp-storage-emulator), mlflow, api, mage. Environment and commands come from
docker-compose.yml via compose_env. Ports: POSTGRES_PORT, GCS_EMULATOR_PORT (9023),
MLFLOW_PORT, API_PORT, MAGE_PORT. Logs in $VAR_DIR/log, pid files in $VAR_DIR/run.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compose_env as ce
import pg
import procs
import ready
import secrets_check

REPO = Path(__file__).resolve().parents[2]
ORDER = ("postgres", "gcs", "mlflow", "api", "mage")
TIMEOUTS = {"postgres": 60.0, "gcs": 30.0, "mlflow": 150.0, "api": 90.0, "mage": 240.0}


class Stack:
    """Resolved configuration of one local stack (paths, ports, variables)."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.values = ce.variables(REPO, environ)
        var_dir = Path(self.values.get("VAR_DIR") or "var")
        self.var_dir = var_dir if var_dir.is_absolute() else REPO / var_dir
        self.run_dir, self.log_dir = self.var_dir / "run", self.var_dir / "log"
        self.pg_mode = self.values.get("STACK_PG", "shared")
        if self.pg_mode not in ("shared", "private"):
            raise ce.ComposeError(f"STACK_PG must be shared or private, got {self.pg_mode!r}")
        v = self.values
        self.ports = {
            "postgres": int(v.get("POSTGRES_PORT") or 5432),
            "gcs": int(v.get("GCS_EMULATOR_PORT") or 9023),
            "mlflow": int(v.get("MLFLOW_PORT") or 5000),
            "api": int(v.get("API_PORT") or 8000),
            "mage": int(v.get("MAGE_PORT") or 6789),
        }
        self.local = ce.Local(repo=REPO, var_dir=self.var_dir, ports=self.ports)
        self.compose = ce.load_compose(REPO / "docker-compose.yml")

    def app_env(self, service: str) -> dict[str, str]:
        """Environment of an app process: this process's env + the compose service's."""
        env = dict(os.environ)
        env.update(ce.service_environment(self.compose, service, self.values, self.local))
        return env

    def client_env(self) -> dict[str, str]:
        """What a `persona` CLI needs to work against the stack (the api's settings)."""
        env = ce.service_environment(self.compose, "api", self.values, self.local)
        return {k: v for k, v in env.items() if not k.startswith("API_")}

    def spec(self, name: str) -> tuple[list[str], dict[str, str], str | None]:
        """argv, environment and OS user of a service."""
        v = self.values
        if name == "postgres":
            return (
                pg.server_argv(self.pg_dir(), self.ports["postgres"]),
                dict(os.environ),
                (pg.os_user()),
            )
        if name == "gcs":
            argv = [
                str(REPO / ".venv/bin/gcp-storage-emulator"),
                "start",
                "--host=127.0.0.1",
                f"--port={self.ports['gcs']}",
                "--in-memory",
                f"--default-bucket={v['GCS_BUCKET']}",
            ]
            return argv, dict(os.environ), None
        if name == "mlflow":
            argv = ce.service_command(self.compose, "mlflow", v, self.local)
            env = self.app_env("mlflow")
            env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{self.ports['gcs']}"
            env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)  # the emulator needs no key
            return [str(REPO / ".venv/bin" / argv[0]), *argv[1:]], env, None
        if name == "api":
            argv = ce.service_command(self.compose, "api", v, self.local)
            return [str(REPO / ".venv/bin" / argv[0]), *argv[1:]], self.app_env("api"), None
        if name == "mage":
            argv = ce.service_command(self.compose, "mage", v, self.local)
            return argv, self.app_env("mage"), None
        raise ce.ComposeError(f"unknown service {name!r}; expected one of {', '.join(ORDER)}")

    def pg_dir(self) -> Path:
        """Folder of the private PostgreSQL cluster."""
        return Path(self.values.get("STACK_PG_DIR") or self.var_dir / "pg")

    def probe(self, name: str) -> str | None:
        """Readiness probe of a service: None when ready, else why not."""
        port = self.ports[name]
        if name == "postgres":
            return ready.tcp(port)
        if name == "gcs":
            return ready.http(f"http://127.0.0.1:{port}/storage/v1/b/{self.values['GCS_BUCKET']}")
        if name == "mage":
            return ready.http(f"http://127.0.0.1:{port}/api/status")
        return ready.http(f"http://127.0.0.1:{port}/health")


def up(stack: Stack, names: list[str]) -> int:
    """Start the services not running yet, in order, each waited ready."""
    for name in names:
        if name == "postgres" and stack.pg_mode == "shared":
            pg.ensure_databases(stack.values, stack.ports["postgres"], private=False)
            print(f"postgres   shared server 127.0.0.1:{stack.ports['postgres']} (not managed)")
            continue
        record = procs.read_record(stack.run_dir, name)
        if record and procs.alive(record):
            print(f"{name:<10} already running (pid {record['pid']})")
            continue
        if record:
            procs.stop(record)  # leftovers of a dead service
        if ready.tcp(stack.ports[name]) is None:
            print(f"{name}: port {stack.ports[name]} is already in use", file=sys.stderr)
            return 1
        if name == "postgres":
            pg.init_cluster(stack.pg_dir(), stack.values)
        argv, env, user = stack.spec(name)
        log = stack.log_dir / f"{name}.log"
        record = procs.spawn(name, argv, env, cwd=REPO, log=log, run_dir=stack.run_dir, user=user)
        why = ready.wait(functools.partial(stack.probe, name), record, TIMEOUTS[name])
        if why:
            print(f"{name}: not ready: {why}; last log lines of {log}:", file=sys.stderr)
            print(ready.tail(log), file=sys.stderr)
            procs.stop(record, _stop_signal(name))
            procs.pid_file(stack.run_dir, name).unlink(missing_ok=True)
            return 1
        if name == "postgres":
            pg.ensure_databases(stack.values, stack.ports["postgres"], private=True)
        print(f"{name:<10} ready   pid {record['pid']:<7} port {stack.ports[name]}  log {log}")
    return 0


def down(stack: Stack, names: list[str]) -> int:
    """Stop what `up` started (reverse order); verify nothing is left."""
    status = 0
    for name in reversed(names):
        record = procs.read_record(stack.run_dir, name)
        if record is None:
            continue
        try:
            killed = procs.stop(record, _stop_signal(name))
        except RuntimeError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
            continue
        procs.pid_file(stack.run_dir, name).unlink(missing_ok=True)
        print(f"{name:<10} stopped" + (f" (SIGKILL: {killed})" if killed else ""))
    return status


def status(stack: Stack) -> list[dict[str, Any]]:
    """One row per service: running, pid, port, ready."""
    rows = []
    for name in ORDER:
        record = procs.read_record(stack.run_dir, name)
        running = bool(record and procs.alive(record))
        external = name == "postgres" and stack.pg_mode == "shared"
        rows.append(
            {
                "service": name,
                "managed": not external,
                "running": running,
                "pid": record["pid"] if record else None,
                "port": stack.ports[name],
                "ready": (running or external) and stack.probe(name) is None,
            }
        )
    return rows


def _stop_signal(name: str) -> int:
    return signal.SIGINT if name == "postgres" else signal.SIGTERM


def secrets_ok(values: dict[str, str]) -> bool:
    """Check the stack's secrets before starting anything (prints the verdict)."""
    code, message = secrets_check.verdict(values)
    if message:
        print(message, file=sys.stderr)
    return code == 0


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    if not argv or argv[0] not in ("up", "down", "status", "env", "restart"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[0], [a for a in argv[1:] if not a.startswith("--")]
    as_json = "--json" in argv
    try:
        stack = Stack(dict(os.environ))
        names = [n for n in ORDER if n in rest] if rest else list(ORDER)
        unknown = set(rest) - set(ORDER)
        if unknown:
            raise ce.ComposeError(f"unknown service(s) {sorted(unknown)}; known: {ORDER}")
        if cmd in ("up", "restart") and not secrets_ok(stack.values):
            return 2
        if cmd == "up":
            return up(stack, names)
        if cmd == "down":
            return down(stack, names)
        if cmd == "restart":
            return down(stack, names) or up(stack, names)
        if cmd == "env":
            env = stack.client_env()
            print(
                json.dumps(env, indent=1)
                if as_json
                else "\n".join(f"{k}={v}" for k, v in env.items())
            )
            return 0
        rows = status(stack)
        if as_json:
            print(json.dumps(rows, indent=1))
        for row in [] if as_json else rows:
            print(
                f"{row['service']:<10} {'running' if row['running'] else '-':<8} "
                f"pid {row['pid'] or '-':<7} port {row['port']:<6} "
                f"{'ready' if row['ready'] else 'not ready'}"
            )
        return 0
    except (ce.ComposeError, pg.PgError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
