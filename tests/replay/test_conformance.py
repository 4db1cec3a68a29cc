"""The emulator, asked what Azure was asked in a recorded session, answers as Azure did.

Each recorded request of the Azure ML control plane (workspace, online endpoints and deployments,
their operation status, endpoint token, scoring) is sent to the emulator through the transport the
SDKs use (emulator/transport.py), at the same moment of the session on the simulated clock (the
recorded `Date` headers), and the answers are compared: status code, the long-running-operation
headers (`Azure-AsyncOperation`, `Location`, `x-ms-async-operation-timeout`, `Retry-After`), the
body's keys (recursively) and the values the app relies on (provisioning states, the traffic an
endpoint shows while it updates, operation status). Requests for things the app never touches
(datastores, code and environment uploads, blobs) are skipped. Where they differ, the emulator is
wrong. Timing: an operation's status is compared except within 10% of the recorded duration around
its end (the emulator's defaults are one number for sessions that differ by a few percent).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from azure.core.pipeline import Pipeline
from azure.core.rest import HttpRequest

from emulator.azure import Emulator
from emulator.clock import SimClock
from emulator.scoring import AML_TOKEN, SCORING_KEYS
from emulator.transport import emulator_transport
from tests.replay.transport import body_bytes, load
from tests.shapes import key_paths as shape_of

RECORDINGS = [
    "azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.json",
    "azure-ai-ml/test_online_deployment.pyTestOnlineDeploymenttest_online_deployment_skip_script_validation.json",
]
LRO_HEADERS = ("Azure-AsyncOperation", "Location", "x-ms-async-operation-timeout", "Retry-After")
# Maps with free-form keys (names of deployments, tags...): their keys are data, not shape.
FREE_FORM = {
    "properties.properties",
    "properties.traffic",
    "properties.mirrorTraffic",
    "tags",
    "properties.environmentVariables",
    "identity.userAssignedIdentities",
}
OP_STATUS = re.compile(r"/mfeOperations(Status|Results)/([^/?]+)", re.IGNORECASE)
SCOPE = re.compile(
    r"(/workspaces/[^/]+$|/onlineEndpoints(/|$)|/mfeOperationsStatus/|/mfeOperationResults/"
    r"|\.inference\.ml\.azure\.com/score)",
    re.IGNORECASE,
)


def key_paths(value: Any) -> set[str]:
    return shape_of(value, FREE_FORM)


def _date(entry: dict[str, Any]) -> datetime | None:
    for name, value in (entry.get("ResponseHeaders") or {}).items():
        if name.lower() == "date":
            return parsedate_to_datetime(value if isinstance(value, str) else value[0])
    return None


def _headers(raw: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): (", ".join(v) if isinstance(v, list) else str(v)) for k, v in raw.items()}


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return payload.decode(errors="replace")


@dataclass
class Recorded:
    """An operation as the recording tells it: when it started and ended (its status body)."""

    start: datetime | None = None
    end: datetime | None = None
    ours: str | None = None  # the emulator's operation id for it


@dataclass
class Session:
    recording: str
    emu: Emulator = field(init=False)
    differences: list[str] = field(default_factory=list)
    operations: dict[str, Recorded] = field(default_factory=dict)
    compared: int = 0

    def __post_init__(self) -> None:
        self.emu = Emulator(
            SimClock(), subscription="00000000-0000-0000-0000-000000000", resource_group="00000", workspace="00000"
        )
        self.transport = emulator_transport(self.emu)
        self.pipeline = Pipeline(transport=self.transport, policies=[])
        self.entries = load(self.recording)
        # Recorded operation durations, from their final status bodies.
        for entry in self.entries:
            body = entry.get("ResponseBody")
            match = OP_STATUS.search(entry["RequestUri"])
            if match and isinstance(body, dict) and body.get("endTime", "").startswith("20"):
                op = self.operations.setdefault(match[2], Recorded())
                op.start = datetime.fromisoformat(body["startTime"])
                op.end = datetime.fromisoformat(body["endTime"])
        # The world the session ran in: the models its deployments use exist.
        for entry in self.entries:
            sent = entry.get("RequestBody")
            if entry["RequestMethod"] == "PUT" and "/deployments/" in entry["RequestUri"] and isinstance(sent, dict):
                model = re.search(r"/models/([^/]+)/versions/([^/]+)$", sent["properties"]["model"])
                self.emu.register_model(model[1], model[2])

    def send(self, method: str, url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"} if body else {}
        if ".inference.ml.azure.com/" in url:
            # The recordings keep no Authorization header (the test proxy strips it): the replay sends
            # what the endpoint's auth mode asks for, as the SDK's test did (the key listKeys gives,
            # or the token POST .../token gives for an AMLToken endpoint, as in the recording).
            name = url.split("//", 1)[1].split(".", 1)[0]
            mode = self.emu.endpoints[name].body["properties"]["authMode"]
            headers["Authorization"] = f"Bearer {AML_TOKEN if mode == 'AMLToken' else SCORING_KEYS[0]}"
        response = self.pipeline.run(HttpRequest(method, url, headers=headers, content=body or None)).http_response
        response.read()
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content

    def differ(self, index: int, entry: dict[str, Any], what: str) -> None:
        self.differences.append(f"#{index} {entry['RequestMethod']} {entry['RequestUri'][:140]}: {what}")

    def run(self) -> None:
        first = _date(self.entries[0])
        assert first is not None
        start = self.emu.clock.now()
        for index, entry in enumerate(self.entries):
            url = entry["RequestUri"]
            if not SCOPE.search(url.split("?")[0]):
                continue
            when = _date(entry)
            if when is not None and start + (when - first) > self.emu.clock.now():
                self.emu.clock.advance(start + (when - first) - self.emu.clock.now())
            recorded_op = OP_STATUS.search(url)
            if recorded_op:
                op = self.operations.setdefault(recorded_op[2], Recorded())
                if op.ours is None:
                    self.differ(index, entry, "the emulator started no operation for this poll")
                    continue
                url = url.replace(recorded_op[2], op.ours)
            status, headers, payload = self.send(entry["RequestMethod"], url, body_bytes(entry.get("RequestBody")))
            self.compared += 1
            self.compare(index, entry, status, headers, _json(payload))

    def compare(self, index: int, entry: dict[str, Any], status: int, headers: dict[str, str], ours: Any) -> None:
        recorded_headers = _headers(entry.get("ResponseHeaders") or {})
        if status != entry["StatusCode"]:
            self.differ(index, entry, f"status {status}, Azure answered {entry['StatusCode']}")
        for name in LRO_HEADERS:
            theirs, mine = recorded_headers.get(name.lower()), headers.get(name.lower())
            value_matters = name == "x-ms-async-operation-timeout"
            if (theirs is None) != (mine is None) or (value_matters and theirs != mine):
                self.differ(index, entry, f"header {name}: Azure {theirs!r}, emulator {mine!r}")
        for name in ("azure-asyncoperation", "location"):  # follow the emulator's operations
            theirs, mine = recorded_headers.get(name), headers.get(name)
            if theirs and mine and OP_STATUS.search(theirs) and OP_STATUS.search(mine):
                self.operations.setdefault(OP_STATUS.search(theirs)[2], Recorded()).ours = OP_STATUS.search(mine)[2]
        recorded = entry.get("ResponseBody")
        url = entry["RequestUri"].split("?")[0]
        if url.endswith("/score") or not isinstance(recorded, dict):
            if isinstance(recorded, dict) != isinstance(ours, dict):
                self.differ(index, entry, f"body: Azure {str(recorded)[:80]!r}, emulator {str(ours)[:80]!r}")
            return
        if not isinstance(ours, dict):
            self.differ(index, entry, f"body: emulator {str(ours)[:120]!r}")
            return
        wanted = key_paths(recorded)
        if re.search(r"/workspaces/[^/]+$", url):
            wanted = {p for p in wanted if "." not in p}  # the app reads the workspace's location only
        if missing := sorted(wanted - key_paths(ours)):
            self.differ(index, entry, f"keys Azure sent and the emulator lacks: {missing}")
        self.compare_values(index, entry, recorded, ours)

    def near_an_end(self, entry: dict[str, Any]) -> bool:
        """Too close to the end of a recorded operation to compare one default with one session."""
        when = _date(entry)
        return when is not None and any(
            abs(when - op.end) <= (op.end - op.start) * 0.1 + timedelta(seconds=6)
            for op in self.operations.values()
            if op.start and op.end
        )

    def compare_values(self, index: int, entry: dict[str, Any], recorded: dict, ours: dict) -> None:
        timing = not self.near_an_end(entry)
        props_r, props_o = recorded.get("properties"), ours.get("properties")
        if isinstance(props_r, dict) and isinstance(props_o, dict):
            for key in ("provisioningState", "traffic", "mirrorTraffic", "endpointComputeType", "authMode"):
                if key == "provisioningState" and not timing:
                    continue
                if key in props_r and props_r[key] != props_o.get(key):
                    said = f"Azure {props_r[key]!r}, emulator {props_o.get(key)!r}"
                    self.differ(index, entry, f"properties.{key}: {said}")
        is_status = OP_STATUS.search(entry["RequestUri"]) and "status" in recorded
        if is_status and timing and recorded["status"] != ours.get("status"):
            self.differ(index, entry, f"status {ours.get('status')!r}, Azure said {recorded['status']!r}")


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda r: r.rsplit("test", 1)[-1].removesuffix(".json"))
def test_the_emulator_answers_the_recorded_session_as_azure_did(recording):
    session = Session(recording)
    session.run()
    assert session.compared > 100, session.compared
    assert not session.differences, "\n".join(session.differences)
