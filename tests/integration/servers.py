"""Real servers for integration tests: the GCS emulator and an MLflow tracking server.

Import the fixtures into a test module (``from tests.integration.servers import
gcs_emulator, mlflow_server  # noqa: F401``). Each server runs in its own process group on
a free port and is stopped (SIGTERM, then SIGKILL) by the fixture's teardown; starting,
waiting and stopping are `persona.serving.launch`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from persona.serving import launch

BIN = Path(sys.executable).parent
BUCKET = "persona-test-artifacts"


def status_below_500(status: int, body: bytes) -> bool:
    """Ready when the server answers at all without a server error."""
    return status < 500


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, output to `log` (`persona.serving.launch`)."""
    return launch.start(args, "", env=env, log=log).proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server's whole process group (SIGTERM, then SIGKILL after 10 s)."""
    launch.stop_process(proc, timeout_s=10)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    """Wait until `url` answers (any status < 500) or fail with the server's log."""
    server = launch.Server(proc, url, log, 0.0)
    try:
        server.wait("", timeout_s=timeout, ready=status_below_500)
    except launch.LaunchError as exc:
        pytest.fail(str(exc))


@dataclass(frozen=True)
class GcsEmulator:
    """A running gcp-storage-emulator with one bucket (`BUCKET`)."""

    url: str
    bucket: str

    def client(self):  # type: ignore[no-untyped-def]
        """A google-cloud-storage client on the emulator (anonymous, no env needed)."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def blob_names(self, prefix: str = "") -> list[str]:
        """Names of every object in the bucket under `prefix`."""
        return sorted(b.name for b in self.client().list_blobs(self.bucket, prefix=prefix))


@pytest.fixture
def gcs_emulator(tmp_path: Path) -> Iterator[GcsEmulator]:
    """A fresh in-memory GCS emulator on a free port, with bucket `BUCKET` created."""
    port = free_port()
    log = tmp_path / "gcs-emulator.log"
    args = [str(BIN / "gcp-storage-emulator"), "start", "--host=127.0.0.1", f"--port={port}"]
    proc = start([*args, "--in-memory"], dict(os.environ), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/storage/v1/b", proc, log, timeout=60)
        emulator = GcsEmulator(url, BUCKET)
        emulator.client().create_bucket(BUCKET)
        yield emulator
    finally:
        stop(proc)


@pytest.fixture
def mlflow_server(pg_url: str, gcs_emulator: GcsEmulator, tmp_path: Path) -> Iterator[str]:
    """An `mlflow server` on PostgreSQL (`pg_url`) proxying artifacts to the emulator bucket.

    Only the server gets STORAGE_EMULATOR_HOST; clients talk to it over HTTP alone.
    """
    port = free_port()
    log = tmp_path / "mlflow-server.log"
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
        "GOOGLE_CLOUD_PROJECT": "test",
    }
    args = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", pg_url,
        "--artifacts-destination", f"gs://{gcs_emulator.bucket}/mlflow",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]  # fmt: skip
    proc = start(args, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, log)
        yield url
    finally:
        stop(proc)
