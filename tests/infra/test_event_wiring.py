"""The Event Grid wiring and the state table in infra/, checked on the parsed Bicep.

Sources:
- Event Grid filters: "Understand event filtering for Event Grid subscriptions"
  https://learn.microsoft.com/azure/event-grid/event-filtering (MicrosoftDocs/azure-docs
  articles/event-grid/event-filtering.md): event types, subject begins/ends with, advanced filters
  (StringBeginsWith, StringEndsWith, StringContains, StringIn, StringNotIn ...) compare plain strings,
  case-insensitively; there is no glob or wildcard operator; 25 filter values per subscription.
- System topics: "System topics in Azure Event Grid" https://learn.microsoft.com/azure/event-grid/system-topics
  (MicrosoftDocs/azure-docs articles/event-grid/system-topics.md): "Only one Azure Event Grid system
  topic is allowed per source".
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
import yaml

from tests.infra.bicep import INFRA, ROOT, body, condition, mentions, parse, resources

MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"


def _expand(values: Any, params: dict[str, list[str]]) -> list[str]:
    """A filter's `values`: a plain list, or a Bicep `[for x in param: '...${x}...']` loop."""
    if isinstance(values, list):
        return [str(v) for v in values]
    loop = values["loop_type"]["detail"]
    item, array = loop["item_name"], loop["array_name"]
    template = values["config"]
    assert isinstance(template, str), f"cannot evaluate {template!r}"
    return [template.replace("${" + item + "}", value) for value in params[array]]


def delivered(subscription_filter: dict[str, Any], event: dict[str, Any], params: dict[str, list[str]]) -> bool:
    """Whether Event Grid delivers `event` (Event Grid schema) through this filter (documented semantics)."""
    f = subscription_filter
    fold = str.casefold
    types = f.get("includedEventTypes")
    if types and fold(event["eventType"]) not in {fold(t) for t in types}:
        return False
    subject = fold(event["subject"])
    if f.get("subjectBeginsWith") and not subject.startswith(fold(f["subjectBeginsWith"])):
        return False
    if f.get("subjectEndsWith") and not subject.endswith(fold(f["subjectEndsWith"])):
        return False
    for adv in f.get("advancedFilters", []) or []:
        key = fold(adv["key"])
        value = fold(str(event.get(key, event["data"].get(key.removeprefix("data."), ""))))
        if key == "subject":
            value = subject
        wanted = [fold(v) for v in _expand(adv["values"], params)]
        op = adv["operatorType"]
        ok = {
            "StringBeginsWith": any(value.startswith(w) for w in wanted),
            "StringEndsWith": any(value.endswith(w) for w in wanted),
            "StringContains": any(w in value for w in wanted),
            "StringIn": value in wanted,
            "StringNotIn": value not in wanted,
        }.get(op)
        assert ok is not None, f"operator {op} not modelled here"
        if not ok:
            return False
    return True


def _subscription() -> dict[str, Any]:
    subs = resources("workspace.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    (sub,) = subs.values()
    return body(sub)


POLICY_WITH_GLOBS = """
targets:
  - model: fraud-model
    endpoint: fraud-scorer
  - model: "churn-*"
    endpoint: churn-scorer
  - model: "*-ranker"
    endpoint: ranker
"""


@pytest.mark.parametrize("model", ["fraud-model", "churn-model", "churn-v2", "search-ranker"], ids=lambda m: m)
def test_every_model_a_policy_target_matches_reaches_the_function(model):
    """Were the Bicep to ask for model names, operators would list the policy's patterns (globs included)."""
    targets = [t["model"] for t in yaml.safe_load(POLICY_WITH_GLOBS)["targets"]]
    assert any(fnmatch.fnmatchcase(model, t) for t in targets)
    event = {"eventType": MODEL_REGISTERED, "subject": f"models/{model}:3", "data": {"modelName": model}}
    params = {name: targets for name, p in parse("workspace.bicep")["parameters"].items() if p["type"] == "array"}
    assert delivered(_subscription()["properties"]["filter"], event, params)


def test_the_subscription_filters_on_the_event_type_and_leaves_model_matching_to_the_app():
    sub_filter = _subscription()["properties"]["filter"]
    assert sub_filter["includedEventTypes"] == [MODEL_REGISTERED]
    assert not sub_filter.get("advancedFilters")
    assert not sub_filter.get("subjectBeginsWith")
    assert not sub_filter.get("subjectEndsWith")
    # the system topic is the workspace's, so only that workspace's events arrive at all
    shipped = yaml.safe_load((ROOT / "policy.yaml").read_text())
    assert all("model" in t for t in shipped["targets"])


def test_the_event_filter_model_is_the_documented_one():
    """The evaluator above, on the filter shapes the old Bicep used: a literal prefix never matches a glob."""
    old = {
        "includedEventTypes": [MODEL_REGISTERED],
        "advancedFilters": [
            {
                "operatorType": "StringBeginsWith",
                "key": "subject",
                "values": {
                    "loop_type": {"type": "array", "detail": {"item_name": "model", "array_name": "targetModels"}},
                    "config": "models/${model}:",
                },
            }
        ],
    }
    event = {"eventType": MODEL_REGISTERED, "subject": "models/churn-model:3", "data": {}}
    assert not delivered(old, event, {"targetModels": ["churn-*"]})
    assert delivered(old, event, {"targetModels": ["churn-model"]})
    assert delivered(old, {**event, "subject": "MODELS/Churn-Model:3"}, {"targetModels": ["churn-model"]})
    assert not delivered(old, {**event, "eventType": "Microsoft.MachineLearningServices.ModelDeployed"}, {})


# -- one system topic per workspace ---------------------------------------------------------------


def test_an_existing_system_topic_can_be_named_and_then_none_is_created():
    workspace = parse("workspace.bicep")
    param = workspace["parameters"]["existingSystemTopicName"]
    assert param["type"] == "string"
    assert param["default"] in ("", "''")
    topics = resources("workspace.bicep", "Microsoft.EventGrid/systemTopics")
    created = [r for r in topics.values() if not r["existing"]]
    referenced = [r for r in topics.values() if r["existing"]]
    assert len(created) == 1
    assert mentions(condition(created[0]), "existingSystemTopicName"), "create one only when none is given"
    assert len(referenced) == 1
    # the subscription hangs off the topic in use, whichever it is
    (sym,) = [s for s, r in topics.items() if r["existing"]]
    assert _subscription()["parent"] == sym
    assert mentions(body(referenced[0])["name"], "existingSystemTopicName") or mentions(
        workspace["variables"], "existingSystemTopicName"
    )


def test_the_existing_system_topic_parameter_reaches_the_module_from_azd():
    main = parse("main.bicep")
    assert main["parameters"]["existingSystemTopicName"]["type"] == "string"
    module = main["modules"]["workspace"]
    assert module["detail"]["path"] == "workspace.bicep"
    assert module["config"]["params"]["existingSystemTopicName"] == "existingSystemTopicName"
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert "SAFE_ROLLOUT_EVENTGRID_SYSTEM_TOPIC" in params["existingSystemTopicName"]["value"]


# -- the state table -------------------------------------------------------------------------------


def test_the_state_table_is_created_by_the_bicep_and_the_apps_role_is_scoped_to_it():
    main = parse("main.bicep")
    table_name = main["variables"]["tableName"]["value"]
    (table,) = resources("main.bicep", "Microsoft.Storage/storageAccounts/tableServices/tables").items()
    table_sym, table_res = table
    assert body(table_res)["name"] == "tableName"
    text = (INFRA / "main.bicep").read_text()
    assert "{ name: 'SAFE_ROLLOUT_TABLE_NAME', value: tableName }" in text
    assignments = resources("main.bicep", "Microsoft.Authorization/roleAssignments")
    table_roles = [
        b
        for b in map(body, assignments.values())
        if mentions(b["properties"]["roleDefinitionId"], "roles")
        and "storageTableDataContributor" in json.dumps(b["properties"]["roleDefinitionId"])
    ]
    assert [r["scope"] for r in table_roles] == [table_sym]
    assert table_name == "saferollouts"
