"""Start and stop a real Azurite table service (npm package, installed by `make test`) by PID."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
# Azurite's documented development account; public, not a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary(service: str = "table") -> str | None:
    local = ROOT / "node_modules" / ".bin" / f"azurite-{service}"
    if local.exists():
        return str(local)
    return shutil.which(f"azurite-{service}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connection_string(port: int, service: str = "table") -> str:
    endpoint = {"queue": "QueueEndpoint", "blob": "BlobEndpoint"}.get(service, "TableEndpoint")
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"{endpoint}=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )


@contextmanager
def running_azurite(timeout_s: float = 30.0, *, service: str = "table") -> Iterator[str]:
    """Yield a connection string to a fresh in-memory Azurite (its table service, or with
    service="queue" its queue service); always stop it by PID."""
    binary = azurite_binary(service)
    if binary is None:
        raise RuntimeError(f"azurite-{service} not found: run `make test` (it installs Azurite from npm)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="azurite-")
    log = open(os.path.join(workdir, "azurite.log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            binary,
            f"--{service}Host",
            "127.0.0.1",
            f"--{service}Port",
            str(port),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log.flush()
                tail = Path(workdir, "azurite.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Azurite exited early: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite did not listen on {port} within {timeout_s}s") from None
                time.sleep(0.05)  # waiting on a real process, not simulated time
        yield connection_string(port, service)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
