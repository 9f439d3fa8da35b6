"""PostgreSQL for the local stack: the machine's server or a private cluster.

The databases are created by docker/postgres/init.sql, the same script the compose
`postgres` container runs on its first start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INIT_SQL = REPO / "docker" / "postgres" / "init.sql"
_ROLE_SQL = (
    "SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'p') "
    "WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u')\\gexec\n"
)


class PgError(Exception):
    """PostgreSQL could not be prepared; the message says what and how to fix it."""


def os_user() -> str | None:
    """OS user that runs a private cluster: `postgres` when we are root, else ourselves."""
    return "postgres" if os.geteuid() == 0 else None


def bindir() -> Path:
    """Folder of initdb/postgres: PG_BINDIR, the `initdb` on PATH, or Debian's layout."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))  # not on PATH there
    if debian:
        return debian[-1].parent
    raise PgError("initdb not found: install PostgreSQL 15 or set PG_BINDIR")


def server_argv(pg_dir: Path, port: int) -> list[str]:
    """The postmaster command of a private cluster (TCP on 127.0.0.1 only)."""
    return [
        str(bindir() / "postgres"),
        "-D",
        str(pg_dir / "data"),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={pg_dir / 'sock'}",
    ]


def _as_user(argv: list[str]) -> list[str]:
    user = os_user()
    return ["runuser", "-u", user, "--", *argv] if user else argv


def init_cluster(pg_dir: Path, values: Mapping[str, str]) -> None:
    """initdb a private cluster in pg_dir/data (no-op when it exists).

    The superuser is POSTGRES_USER with POSTGRES_PASSWORD (like the postgres image); local
    socket connections are trusted, TCP ones need the password.

    Raises:
        PgError: initdb failed or the folder is not usable by the cluster's OS user.
    """
    data = pg_dir / "data"
    if (data / "PG_VERSION").is_file():
        return
    (pg_dir / "sock").mkdir(parents=True, exist_ok=True)
    pwfile = pg_dir / "pwfile"
    pwfile.write_text(values["POSTGRES_PASSWORD"] + "\n")
    user = os_user()
    if user:
        for path in (pg_dir, pg_dir / "sock", pwfile):
            shutil.chown(path, user, user)
        check = subprocess.run(_as_user(["test", "-w", str(pg_dir)]), check=False)
        if check.returncode != 0:
            raise PgError(
                f"user {user} cannot write {pg_dir} (a parent folder is private?): "
                "set STACK_PG_DIR or VAR_DIR to a folder it can reach"
            )
    argv = [
        str(bindir() / "initdb"),
        "-D",
        str(data),
        "-U",
        values["POSTGRES_USER"],
        f"--pwfile={pwfile}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--no-instructions",
    ]
    done = subprocess.run(_as_user(argv), capture_output=True, text=True, check=False)
    pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise PgError(f"initdb failed: {done.stderr.strip()[-500:]}")


def _psql(port: int, user: str, password: str, args: list[str], script: str = "") -> None:
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    argv = [
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        user,
        "-d",
        "postgres",
        *args,
    ]
    done = subprocess.run(argv, input=script, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PgError(f"psql as {user} on 127.0.0.1:{port} failed: {done.stderr.strip()}")


def ensure_databases(values: Mapping[str, str], port: int, *, private: bool) -> None:
    """Create the POSTGRES_USER role (shared server only) and the two databases if missing.

    Raises:
        PgError: The server is unreachable or refused.
    """
    user, password = values["POSTGRES_USER"], values["POSTGRES_PASSWORD"]
    if not private:
        admin = values.get("STACK_PG_ADMIN_USER") or "postgres"
        _psql(
            port,
            admin,
            values.get("STACK_PG_ADMIN_PASSWORD", ""),
            ["-v", f"u={user}", "-v", f"p={password}"],
            _ROLE_SQL,
        )
    _psql(
        port,
        user,
        password,
        [
            "-v",
            f"survey_db={values['POSTGRES_SURVEY_DB']}",
            "-v",
            f"mlflow_db={values['POSTGRES_MLFLOW_DB']}",
            "-f",
            str(INIT_SQL),
        ],
    )
