"""The emulator over HTTPS on 127.0.0.1, with a self-signed certificate made at start.

Every service shares one port; requests are told apart by path (ARM under /subscriptions/...,
metrics by `metrics:getBatch`, Log Analytics under /v1/workspaces, scoring at
/endpoints/{endpoint}/score, Event Grid at /api/events).
Run: python -m emulator.server --port 8443 --cert-dir DIR (prints the port and CA bundle path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import re
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from emulator.azure import Emulator


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safe-rollout-emulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "emulator.crt", directory / "emulator.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def serve(emulator: Emulator, port: int, cert_dir: Path, *, tls: bool = True) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (call .shutdown() to stop)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = dict(self.headers.items())
            path = re.sub(r"^/endpoints/[A-Za-z0-9-]+(?=/score)", "", self.path)
            url = f"https://{_service_host(self.path, headers)}{path}"
            status, out_headers, payload = emulator.handle(self.command, url, headers, body)
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    emulator.public_base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    if tls:
        cert, key = make_certificate(cert_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="emulator-server").start()
    return server


def _service_host(path: str, headers: dict[str, str]) -> str:
    if "metrics:getbatch" in path.lower():
        return "eastus.metrics.monitor.azure.com"
    if path.startswith("/v1/workspaces/"):
        return "api.loganalytics.io"
    if path.startswith("/api/events"):
        return "topic.eastus-1.eventgrid.azure.net"
    scoring = re.match(r"^/endpoints/([A-Za-z0-9-]+)/score", path)
    if scoring:
        return f"{scoring[1].lower()}.eastus.inference.ml.azure.com"
    return "management.azure.com"


def main() -> int:
    from emulator.clock import SimClock

    parser = argparse.ArgumentParser(description="Serve the Safe Rollout Azure emulator over HTTPS")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert-dir", type=Path, default=Path(".emulator"))
    args = parser.parse_args()
    serve(Emulator(SimClock()), args.port, args.cert_dir)
    print(f"emulator on https://127.0.0.1:{args.port} (CA bundle {args.cert_dir / 'emulator.crt'})", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
