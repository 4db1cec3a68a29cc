"""The safety net at the edges (issue 11), through the real function handlers:

- an alert's rollback survives storage or Azure blinking: the action group is asked to retry (503,
  which it retries) and the retry rolls back; people get a 503 with Retry-After, never a 500;
- a broken policy file stops only what needs it (a model registration, which fails so Event Grid
  retries it); alerts, people and the timer carry on; a broken edit keeps the last good file;
- careless or hostile input is refused with a clear message, and no setting's value reaches a log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bootstrap import build_service, set_service
from shared.payloads import PayloadError, parse_alert
from shared.rollout.model import RolloutPhase, TrafficSplit
from shared.settings import SETTINGS, Settings, SettingsError
from tests.emulated import METRICS_ENDPOINT
from tests.functions.harness import ALERT_SECRET, DEFAULT_POLICY, Harness, make_harness

P = RolloutPhase
GREEN = "fraud-model-v2"


def fired(harness: Harness, context: Any = None) -> dict[str, Any]:
    """A metric alert about green, in the common alert schema (alertContext replaceable)."""
    if context is None:
        dims = [{"name": "deployment", "value": GREEN}]
        context = {"condition": {"allOf": [{"metricName": "RequestLatency_P99", "dimensions": dims}]}}
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": "/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/a-1",
                "alertRule": "green-p99-latency",
                "severity": "Sev2",
                "monitorCondition": "Fired",
                "alertTargetIDs": [harness.world.emu.endpoint_id("fraud-scorer").lower()],
            },
            "alertContext": context,
        },
    }


def to_canary(harness: Harness) -> None:
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)


def detail(response: func.HttpResponse) -> str:
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_body())
    assert body["status"] == response.status_code
    return str(body["detail"])


class Outage:
    """While on, every call of the Table SDK raises `error`: the real adapter and store see exactly
    what they would see when Azure Storage cannot be reached."""

    def __init__(self, harness: Harness, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
        self.on = False
        table = harness.service.store._rows._table
        for name in ("get_entity", "query_entities", "submit_transaction"):
            monkeypatch.setattr(table, name, self._guard(getattr(table, name), error))

    def _guard(self, real: Callable[..., Any], error: Exception) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.on:
                raise error
            return real(*args, **kwargs)

        return call

    def __enter__(self) -> Outage:
        self.on = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.on = False


# -- 1. alerts and people when storage or Azure blinks ----------------------------------------------


@pytest.mark.parametrize(
    "error",
    [ServiceRequestError("connection refused"), ConnectionResetError("reset by peer")],
    ids=["storage unreachable", "an error the SDK does not wrap"],
)
def test_an_alert_during_an_outage_is_retried_by_the_action_group_and_the_retry_rolls_back(
    harness, monkeypatch, caplog, error
):
    to_canary(harness)
    caplog.set_level(logging.DEBUG)
    with Outage(harness, monkeypatch, error):
        response = harness.alert(fired(harness))
    # Action groups retry 408, 429, 503 and 504 only (docs/AZURE-FACTS-USED.md): never a 500.
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert detail(response)
    assert harness.phase() == P.CANARY  # nothing was applied
    failure = [r for r in caplog.records if "not applied" in r.getMessage()]
    assert failure, "the failure is logged"
    assert ALERT_SECRET not in caplog.text
    assert ALERT_SECRET not in response.get_body().decode()

    retry = harness.alert(fired(harness))  # the action group's retry, storage back
    assert retry.status_code == 200
    assert json.loads(retry.get_body())["rollouts"][0]["outcome"].startswith("rolled back")
    assert harness.until_traffic_lands() == 0  # ordered within the request, even if Azure was busy
    assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})


@pytest.mark.parametrize(
    ("name", "method", "action"),
    [
        ("list_rollouts", "GET", None),
        ("get_rollout", "GET", None),
        ("rollout_report", "GET", None),
        ("override_rollout", "POST", "pause"),
        ("override_rollout", "POST", "rollback"),
    ],
)
def test_people_get_503_with_retry_after_while_storage_is_unreachable(harness, monkeypatch, name, method, action):
    to_canary(harness)
    route = {"rollout_id": harness.rollout().id, **({"action": action} if action else {})}
    body = {"actor": "ana", "reason": "checking"} if method == "POST" else None
    with Outage(harness, monkeypatch, ServiceRequestError("connection refused")):
        response = harness.http(name, method, route=route, body=body)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "try again" in detail(response)
    assert harness.phase() == P.CANARY
    # and once storage is back, the same request works
    assert harness.http(name, method, route=route, body=body).status_code == 200


# -- 2. the policy file ------------------------------------------------------------------------------


def restart(harness: Harness, azurite: str, table_name: str, policy: Path) -> None:
    """The app starts again, configured from its settings as in Azure (Azure itself emulated)."""
    env = {
        "SAFE_ROLLOUT_STORAGE_CONNECTION": azurite,
        "SAFE_ROLLOUT_TABLE_NAME": table_name,
        "SAFE_ROLLOUT_METRICS_ENDPOINT": METRICS_ENDPOINT,
        "SAFE_ROLLOUT_CREDENTIAL": "emulator",
        "SAFE_ROLLOUT_POLLING_INTERVAL": "0",
        "SAFE_ROLLOUT_POLICY_FILE": str(policy),
    }
    set_service(build_service(Settings.from_env(env), transport=harness.world.transport, clock=harness.world.clock))


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: None, "not found"),
    "not YAML": (lambda p: p.write_text("targets: [\n  - model: {"), "not valid YAML"),
    "invalid": (lambda p: p.write_text("targets: []\n"), "invalid"),
    "a directory": (lambda p: p.mkdir(), "Is a directory"),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_with_a_broken_policy_file_alerts_people_and_the_timer_work_and_events_fail_for_a_retry(
    fns, azurite, table_name, tmp_path, monkeypatch, caplog, broken
):
    monkeypatch.setenv("SAFE_ROLLOUT_ALERT_SECRET", ALERT_SECRET)
    harness = make_harness(fns, azurite, table_name, tmp_path)
    to_canary(harness)
    # The app restarts with its policy file broken.
    policy = tmp_path / "deployed" / "policy.yaml"
    policy.parent.mkdir()
    write, problem_text = BROKEN[broken]
    write(policy)
    restart(harness, azurite, table_name, policy)
    try:
        harness.tick(2)
        assert harness.http("list_rollouts").status_code == 200
        assert harness.command("pause", reason="looking").status_code == 200
        assert harness.command("resume").status_code == 200
        response = harness.alert(fired(harness))
        assert response.status_code == 200
        assert json.loads(response.get_body())["rollouts"][0]["outcome"].startswith("rolled back")
        assert harness.until_traffic_lands() == 0
        assert harness.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100})

        # A registration needs the file: it fails, so Event Grid retries it, and says why.
        caplog.set_level(logging.INFO)
        with pytest.raises((ValueError, OSError)):
            harness.register("3")
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(str(policy) in m and problem_text in m for m in logged), logged
        assert any("Event Grid will retry" in m for m in logged), logged
        assert [r.model.version for r in (s.rollout for s in harness.rollouts())] == ["2"]
    finally:
        set_service(None)


def test_a_first_deployment_reads_its_own_endpoints_template_when_it_is_created(fns, azurite, table_name, tmp_path):
    policy = DEFAULT_POLICY.replace(
        "targets:\n",
        "targets:\n"
        "  - model: other-model\n    endpoint: fraud-scorer\n"
        "    template: {instance_type: Standard_F2s_v2, instance_count: 1}\n"
        "  - model: fraud-model\n    endpoint: new-scorer\n"
        "    template: {instance_type: Standard_E4s_v3, instance_count: 2}\n",
    )
    harness = make_harness(fns, azurite, table_name, tmp_path, policy=policy)
    harness.world.emu.add_endpoint("new-scorer")  # no deployment to copy
    restart(harness, azurite, table_name, harness.policy_path)
    harness.register("2")
    requests = harness.world.emu.requests
    (body,) = [b for m, u, b in requests if m == "PUT" and "/onlineEndpoints/new-scorer/deployments/" in u]
    assert body["properties"]["instanceType"] == "Standard_E4s_v3"  # its own target's, not the first in the file
    assert body["sku"]["capacity"] == 2


def _huge_duration(path: Path) -> None:
    path.write_text(DEFAULT_POLICY.replace("{percent: 20, min_duration: 10m", "{percent: 20, min_duration: 1e300d"))


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    "edit",
    [_directory, _huge_duration, lambda p: p.write_text(": : [")],
    ids=["replaced by a directory", "a 1e300-day duration", "not YAML"],
)
def test_a_broken_edit_of_the_policy_file_keeps_the_last_good_one_whatever_it_raises(harness, caplog, edit):
    harness.register("2")  # reads the good file
    edit(harness.policy_path)
    caplog.set_level(logging.INFO)
    harness.register("3")  # a newer version supersedes, under the last good file
    assert harness.phase("3") == P.PENDING
    harness.register("4")
    assert harness.phase("4") == P.PENDING
    kept = [r for r in caplog.records if "still using the last valid one" in r.getMessage()]
    assert len(kept) == 1, "logged once per edit, not on every use"
    assert str(harness.policy_path) in kept[0].getMessage()


# -- 3a. who may speak in the audit trail ------------------------------------------------------------

REFUSED = [
    ("safe-rollout", "", "reserved"),
    (" Safe-Rollout ", "", "reserved"),
    ("".join(chr(ord(c) + 0xFEE0) for c in "SAFE") + "-ROLLOUT", "", "reserved"),  # full-width letters fold
    ("alert:green-p99-latency", "", "reserved"),
    ("ALERT:anything", "", "reserved"),
    ("ana\u200b", "", "U+200B"),  # zero-width space
    ("\u202eana", "", "U+202E"),  # right-to-left override
    ("ana\u2066", "", "U+2066"),  # left-to-right isolate
    ("ana\u00ad", "", "U+00AD"),  # soft hyphen
    ("an\u0085a", "", "U+0085"),  # next line (C1 control)
    ("ana\x7f", "", "U+007F"),
    ("ana", "fine\u2028until here", "U+2028"),  # line separator
    ("ana", "ok\u202egnp.exe", "U+202E"),
    ("ana", "tab\tinside", "U+0009"),
    ("ana", "\ufeffbom", "U+FEFF"),
]


def test_people_cannot_pose_as_the_system_or_hide_characters_in_the_audit_trail(harness):
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.MIRRORING)
    before = harness.history()
    for actor, reason, why in REFUSED:
        response = harness.command("pause", actor=actor, reason=reason)
        assert response.status_code == 422, (actor, reason)
        assert why in detail(response), (actor, reason, detail(response))
    assert harness.history() == before  # nothing recorded
    for actor in ("Zoë Ødegård", "李雷", "o'brien (on-call)", "ana@contoso.com", "alerts-team"):
        assert harness.command("pause", actor=actor, reason="checking — see ticket #12").status_code == 200
        assert harness.command("resume", actor=actor).status_code == 200


# -- 3b. settings errors never repeat a value ----------------------------------------------------------

KEY = "c2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZGVm"
PASTED = {
    "connection string": f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=x.net",
    "URL with a SAS token": f"https://acct.table.core.windows.net/?sv=2022-11-02&ss=t&sig={KEY}",
    "URL with credentials": f"https://user:{KEY}@eastus.metrics.monitor.azure.com",
}
BASE_ENV = {
    "SAFE_ROLLOUT_STORAGE_CONNECTION": "UseDevelopmentStorage=true",
    "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://eastus.metrics.monitor.azure.com",
}
CHECKED = [
    "SAFE_ROLLOUT_STORAGE_ACCOUNT_URL",
    "SAFE_ROLLOUT_METRICS_ENDPOINT",
    "SAFE_ROLLOUT_LOGS_ENDPOINT",
    "SAFE_ROLLOUT_EVENTGRID_TOPIC_ENDPOINT",
    "SAFE_ROLLOUT_TABLE_NAME",
    "SAFE_ROLLOUT_CREDENTIAL",
    "SAFE_ROLLOUT_MAX_CONCURRENCY",
    "SAFE_ROLLOUT_TICK_BUDGET_SECONDS",
    "SAFE_ROLLOUT_POLLING_INTERVAL",
]


@pytest.mark.parametrize("pasted", PASTED)
@pytest.mark.parametrize("name", CHECKED)
def test_a_secret_pasted_into_the_wrong_setting_is_refused_without_repeating_it(name, pasted):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(BASE_ENV | {name: PASTED[pasted]})
    message = str(refused.value)
    assert name in message
    assert KEY.lower() not in message.lower()
    assert "acct" not in message  # no part of the value either


def test_a_misconfigured_app_asks_the_action_group_to_retry_and_logs_the_setting_not_its_value(
    fns, monkeypatch, caplog
):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SAFE_ROLLOUT_ALERT_SECRET", ALERT_SECRET)
    monkeypatch.setenv("SAFE_ROLLOUT_STORAGE_CONNECTION", "UseDevelopmentStorage=true")
    monkeypatch.setenv("SAFE_ROLLOUT_METRICS_ENDPOINT", PASTED["connection string"])
    caplog.set_level(logging.DEBUG)
    set_service(None)
    try:
        request = func.HttpRequest(
            "POST",
            "https://app.example/api/alerts",
            headers={"content-type": "application/json"},
            params={"secret": ALERT_SECRET},
            route_params={},
            body=json.dumps(
                {
                    "schemaId": "azureMonitorCommonAlertSchema",
                    "data": {"essentials": {"alertId": "a-1", "monitorCondition": "Fired"}},
                }
            ).encode(),
        )
        response = fns["alert_webhook"](request)
        people = fns["list_rollouts"](
            func.HttpRequest("GET", "https://app.example/api/rollouts", params={}, route_params={}, body=b"")
        )
    finally:
        set_service(None)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert people.status_code == 503
    assert "SAFE_ROLLOUT_METRICS_ENDPOINT" in caplog.text
    everything = caplog.text + response.get_body().decode() + people.get_body().decode()
    assert KEY not in everything
    assert ALERT_SECRET not in everything


# -- 3c. the report page -------------------------------------------------------------------------------


def test_the_report_has_a_strict_content_security_policy_that_still_lets_it_render(harness):
    to_canary(harness)
    harness.command("pause", reason="<script>alert(1)</script> <img src=x onerror=alert(2)>")
    response = harness.http("rollout_report", route={"rollout_id": harness.rollout().id})
    assert response.status_code == 200
    page = response.get_body().decode()
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]  # so no scripts, images, fonts, frames, connections
    assert "script-src" not in directives
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in csp
    assert "*" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # What the page needs is allowed: each inline <style> by its hash, and nothing else.
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert styles
    for css in styles:
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in directives["style-src"]
    tags = _tags(page)
    assert not {"script", "img", "iframe", "object", "link", "base", "form"} & {t for t, _ in tags}
    attributes = {name for _, attrs in tags for name in attrs}
    assert not {a for a in attributes if a in ("style", "src", "href") or a.startswith("on")}  # blocked, or worse
    assert page.count("<svg") >= 3  # the charts are there
    assert "&lt;script&gt;" in page  # the reason, shown as text


def _tags(page: str) -> list[tuple[str, list[str]]]:
    """Every element of the page, with the names of its attributes."""
    found: list[tuple[str, list[str]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, [name for name, _ in attrs]))

    Collect().feed(page)
    return found


# -- 3d. alert bodies of odd shape ----------------------------------------------------------------------

DEEP = 1000
CONTEXTS: dict[str, Any] = {
    "allOf a number": {"condition": {"allOf": 5}},
    "allOf a string": {"condition": {"allOf": "deployment"}},
    "allOf an object": {"condition": {"allOf": {"dimensions": []}}},
    "criterion a number": {"condition": {"allOf": [7]}},
    "dimensions a number": {"condition": {"allOf": [{"dimensions": 7}]}},
    "dimensions a string": {"condition": {"allOf": [{"dimensions": "deployment"}]}},
    "dimensions an object": {"condition": {"allOf": [{"dimensions": {"name": "deployment", "value": GREEN}}]}},
    "dimension a list": {"condition": {"allOf": [{"dimensions": [["deployment", GREEN]]}]}},
    "deployment value a number": {"condition": {"allOf": [{"dimensions": [{"name": "deployment", "value": 2}]}]}},
}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "make",
    [
        lambda h: _nested(DEEP).encode(),
        lambda h: ('{"a":' * DEEP + "1" + "}" * DEEP).encode(),
        lambda h: json.dumps(fired(h, {"x": "HERE"})).replace('"HERE"', _nested(DEEP)).encode(),
        lambda h: json.dumps(fired(h)).replace(f'"value": "{GREEN}"', f'"value": {_nested(150)}').encode(),
        *[(lambda h, c=c: json.dumps(fired(h, c)).encode()) for c in CONTEXTS.values()],
    ],
    ids=["1000-deep list", "1000-deep object", "1000 deep in alertContext", "deep dimension value", *CONTEXTS],
)
def test_alerts_of_odd_shape_answer_400_with_a_message(harness, make):
    to_canary(harness)
    response = harness.http("alert_webhook", "POST", params={"secret": ALERT_SECRET}, body=make(harness))
    assert response.status_code == 400, response.get_body()[:300]
    assert len(detail(response)) > 10
    assert harness.phase() == P.CANARY


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(["allOf", "criterion", "dimensions", "dimension", "name", "value"]),
    value=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=10,
    ),
)
def test_the_alert_parser_answers_or_says_why_whatever_the_condition_holds(where, value):
    dim: Any = {"name": "deployment", "value": GREEN}
    criterion: Any = {"metricName": "m", "dimensions": [dim]}
    all_of: Any = [criterion]
    if where == "allOf":
        all_of = value
    elif where == "criterion":
        all_of = [value]
    elif where == "dimensions":
        criterion["dimensions"] = value
    elif where == "dimension":
        criterion["dimensions"] = [value]
    else:
        dim[where] = value
    body = {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {"alertId": "a", "monitorCondition": "Fired"},
            "alertContext": {"condition": {"allOf": all_of}},
        },
    }
    try:
        notice = parse_alert(json.dumps(body).encode())
    except PayloadError as exc:
        refusal = str(exc)
    else:
        assert all(isinstance(d, str) for d in notice.deployments)
        return
    assert "data.alertContext.condition.allOf" in refusal  # says where


@pytest.fixture(autouse=True)
def _no_service_left_behind() -> Iterator[None]:
    yield
    set_service(None)
