"""Hostile input at every entry point: always a 4xx (or a logged rejection for events) with a
message, never a 500, and nothing written. hypothesis for the event and alert parsers and
handlers; schemathesis against the OpenAPI document for the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.payloads import PayloadError, parse_alert, parse_model_registered
from tests.functions.harness import ALERT_SECRET
from tests.reliability.wsgi import FUNCTION_KEY, wsgi_app

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "azure-samples"
WORKSPACE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
NASTY = st.sampled_from(
    [
        "x' or RowKey ne '",
        "../../etc/passwd",
        "%2F..%2F",
        "models/a:b:c",
        "\u0000",
        "\ud7ff\ue000",
        "🚀" * 40,
        'a" | union AmlOnlineEndpointTrafficLog',
        "/subscriptions/x/../../y",
        "A" * 5000,
        "",
        " ",
        "\n\r\t",
        "models/fraud-model:2/../../3",
        "workspaces/ws/onlineEndpoints/x?api-version=1",
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=80))
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def answer(parse: Any) -> tuple[Any, str]:
    """(result, "") or (None, the refusal's message); any other exception fails the test."""
    try:
        return parse(), ""
    except PayloadError as exc:
        return None, str(exc)


@FUZZ
@given(
    event_type=st.one_of(st.just("Microsoft.MachineLearningServices.ModelRegistered"), TEXT),
    subject=st.one_of(st.none(), TEXT, st.builds(lambda n, v: f"models/{n}:{v}", TEXT, TEXT)),
    source=st.one_of(st.none(), st.just(WORKSPACE), TEXT),
    data=st.one_of(JSONISH, st.fixed_dictionaries({"modelName": TEXT, "modelVersion": JSONISH})),
)
def test_event_parser_answers_or_says_why(event_type, subject, source, data):
    reg, why = answer(
        lambda: parse_model_registered(event_id="e", event_type=event_type, subject=subject, source=source, data=data)
    )
    if reg is None:
        assert why  # refused, with a message saying why
        return
    # whatever got through is safe to put in a Table key, a KQL literal and an ARM path
    for part in (reg.model.name, reg.model.version):
        assert all(c.isalnum() or c in "_.-" for c in part), part
        assert ".." not in part or part.replace(".", "").isalnum()


def _mutations() -> st.SearchStrategy[bytes]:
    sample = json.loads((SAMPLES / "alerts/common-schema.metric-alert.resolved.sample.json").read_text())

    def mutate(path: list[str], value: Any) -> bytes:
        doc = json.loads(json.dumps(sample))
        node = doc
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[path[-1]] = value
        return json.dumps(doc).encode()

    paths = st.sampled_from(
        [
            ["schemaId"],
            ["data"],
            ["data", "essentials"],
            ["data", "essentials", "alertId"],
            ["data", "essentials", "monitorCondition"],
            ["data", "essentials", "alertTargetIDs"],
            ["data", "alertContext"],
            ["data", "alertContext", "condition"],
        ]
    )
    return st.one_of(st.builds(mutate, paths, JSONISH), st.binary(max_size=300), st.text(max_size=200).map(str.encode))


@FUZZ
@given(body=_mutations())
def test_alert_parser_answers_or_says_why(body):
    notice, why = answer(lambda: parse_alert(body))
    if notice is None:
        assert why
        return
    assert notice.condition in ("Fired", "Resolved")


@FUZZ
@given(body=_mutations())
def test_alert_webhook_never_answers_500_and_writes_nothing_for_bad_alerts(harness, body):
    before = len(harness.rollouts())
    resp = harness.alert(json.loads(body) if _is_json(body) else {"raw": body.decode(errors="replace")})
    assert resp.status_code in (200, 400), resp.get_body()[:200]
    if resp.status_code == 400:
        assert json.loads(resp.get_body())["detail"]
    assert len(harness.rollouts()) == before


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


@FUZZ
@given(data=JSONISH, subject=TEXT, topic=st.one_of(st.just(WORKSPACE), TEXT), event_type=TEXT)
def test_event_handler_rejects_with_a_log_and_writes_nothing(harness, data, subject, topic, event_type):
    event = func.EventGridEvent(
        id="fuzz", data=data, topic=topic, subject=subject, event_type=event_type, event_time=None, data_version=""
    )
    harness.fns["model_registered"](event)  # must not raise: a raise would make Event Grid retry forever
    assert harness.rollouts() == []


def test_oversized_alert_bodies_are_refused():
    with pytest.raises(PayloadError, match="at most"):
        parse_alert(b'{"schemaId": "azureMonitorCommonAlertSchema", "pad": "' + b"x" * (300 * 1024) + b'"}')


@pytest.fixture
def api(harness):
    harness.register("2")
    harness.tick(3)
    return schemathesis.openapi.from_wsgi(f"/api/openapi.json?code={FUNCTION_KEY}", wsgi_app(harness.fns))


def test_http_api_conforms_to_its_openapi_document_and_never_answers_500(api):
    """Every operation, with generated (valid and invalid) parameters and bodies."""
    tried = 0
    failures = []
    for result in api.get_all_operations():
        operation = result.ok()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal tried
            tried += 1
            if case.path == "/alerts":
                case.query = {**(case.query or {}), "secret": ALERT_SECRET}
            case.headers = {**(case.headers or {}), "x-functions-key": FUNCTION_KEY}
            response = case.call()
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
            case.validate_response(response)

        check()
    assert not failures, failures
    print(f"\nschemathesis: {tried} generated requests")
