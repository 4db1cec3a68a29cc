"""The emulator over HTTPS with its self-signed certificate: the real SDK talks to it."""

from __future__ import annotations

import warnings

from emulator.azure import Emulator
from emulator.azurite import free_port
from emulator.clock import SimClock
from emulator.server import serve


def test_https_server_answers_the_real_sdk_with_its_own_certificate(tmp_path, monkeypatch):
    from azure.ai.ml import MLClient

    from emulator.transport import StaticCredential

    emu = Emulator(SimClock())
    emu.add_endpoint("fraud-scorer")
    emu.add_deployment("fraud-scorer", "blue", ("fraud-model", "1"), traffic=100)
    port = free_port()
    server = serve(emu, port, tmp_path)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "emulator.crt"))
        monkeypatch.setenv("AZUREML_DEV_URL_MFE", f"https://127.0.0.1:{port}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ml = MLClient(StaticCredential(), emu.subscription, emu.resource_group, emu.workspace)
            endpoint = ml.online_endpoints.get("fraud-scorer")
    finally:
        server.shutdown()
    assert endpoint.traffic == {"blue": 100}
