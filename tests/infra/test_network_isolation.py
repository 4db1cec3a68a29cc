"""The networkIsolation option (issue 18): the Bicep in both modes, and checkov over both.

How the modes are built (tests/infra/modes.py): checkov cannot evaluate Bicep parameters. A
conditional resource's body reads as missing to it (every property check fails: that is why
`checkov -d infra` alone fails CKV_AZURE_191/192 on the lifecycle topic), and a ternary such as
`networkIsolation ? 'Disabled' : 'Enabled'` reads as an object that is neither value. So each mode is
written out as its own copy of infra/ with the parameters fixed: conditions and simple ternaries on
them resolved as ARM would, undeployed resources and module files dropped, and, in private mode,
the `[public mode]` skips dropped, so the checks they silence in public mode must pass on their own.
checkov then scans each copy; the tests below walk the same copies with pycep. Each copy turns on
every optional part (azd's second pass, alerts, the inputs reader, AMPLS in private mode) so checkov
sees all that either mode can deploy.

What this cannot show: that ARM accepts the templates (no Bicep CLI or deployment here; see
docs/OPERATIONS.md, "Private network").
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from typing import Any

import pytest

from tests.infra.bicep import CHECKOV_PYTHON, INFRA, ROOT, body, condition, mentions, parse
from tests.infra.modes import MODES, parsed, unresolved, variant

CHECKOV = CHECKOV_PYTHON.parent / "checkov"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"  # Microsoft Learn, "Azure built-in roles"

# Checks skipped in public mode for want of a private network: with networkIsolation they pass.
PUBLIC_ONLY_SKIPS = {"CKV_AZURE_35", "CKV_AZURE_193"}
# Skipped in both modes, each for the reason written next to it in main.bicep.
REMAINING_SKIPS = {
    # dead-lettering needs trusted-service access, so public network access stays Enabled (absent: checkov
    # would pass it vacuously, a missing attribute counts as passed for this negative check)
    "CKV_AZURE_59",
    "CKV_AZURE_206",  # LRS
    "CKV_AZURE_43",  # computed name
    "CKV_AZURE_225",  # zone redundancy of Flex
    "CKV_AZURE_222",  # Event Grid and action groups call the app's public endpoint
    "CKV_AZURE_17",  # client certificates
    "CKV_AZURE_212",  # minimum instances
    "CKV_AZURE_213",  # health-check path
}

# What the template deployed before the option existed (public mode, defaults).
TODAY_RESOURCES = {
    "logs", "insights", "storage", "blobs", "packageContainer", "deadLetters", "tableService",
    "stateTable", "queueService", "workQueue", "workPoisonQueue", "lifecycleTopic", "plan", "app",
    "appBlobOwner", "appQueues", "appTables", "appLogsReader", "appTelemetry", "appEventSender",
    "deadLetterWriter", "lifecycleDeadLetterWriter", "workbook", "failedTicks", "missingTicks",
    "stuckRollouts", "lifecycleDeadLetters", "modelEventDeadLetters",
    "opsGroup",  # conditional on a variable (e-mail addresses given), so it stays in every copy
}  # fmt: skip


@cache
def _checkov(mode: str) -> dict[str, Any]:
    assert CHECKOV.exists(), "checkov is installed by scripts/bootstrap.sh"
    run = subprocess.run(
        [str(CHECKOV), "-d", str(variant(mode)), "--framework", "bicep", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def _ids(report: dict[str, Any], kind: str) -> set[str]:
    return {c["check_id"] for c in report["results"][kind]}


@pytest.mark.parametrize("mode", ["public-everything", "private-everything"])
def test_checkov_passes_in_both_modes(mode):
    report = _checkov(mode)
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0, failed
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= 24
    # the topic's identity and local-auth checks pass once checkov can read the (resolved) resource
    assert {"CKV_AZURE_191", "CKV_AZURE_192"} <= _ids(report, "passed_checks")


def test_with_network_isolation_the_checks_skipped_for_want_of_it_pass_and_only_explained_skips_remain():
    public, private = _checkov("public-everything"), _checkov("private-everything")
    assert _ids(public, "skipped_checks") == PUBLIC_ONLY_SKIPS | REMAINING_SKIPS
    assert _ids(private, "passed_checks") >= PUBLIC_ONLY_SKIPS
    assert _ids(private, "skipped_checks") == REMAINING_SKIPS
    # the private copy really is private: the settings those checks read
    storage = body(parsed("private-everything")["resources"]["storage"])
    assert storage["properties"]["networkAcls"]["defaultAction"] == "Deny"


def test_every_public_mode_skip_is_about_the_missing_private_network():
    text = (INFRA / "main.bicep").read_text()
    tagged = re.findall(r"checkov:skip=(\w+):\[public mode\]", text)
    assert set(tagged) == PUBLIC_ONLY_SKIPS


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_is_fully_resolved(mode):
    """No setting still hangs on networkIsolation in a mode's copy (nothing left for checkov to misread)."""
    assert unresolved(mode, "networkIsolation") == []


def test_the_public_mode_deploys_what_it_deployed_before():
    main = parsed("public")
    assert set(main["resources"]) == TODAY_RESOURCES
    assert set(main["modules"]) == {"workspace"}
    assert sorted(p.name for p in variant("public").glob("*.bicep")) == ["main.bicep", "workspace.bicep"]
    resources = main["resources"]
    assert body(resources["storage"])["properties"]["networkAcls"] == {
        "defaultAction": "Allow",
        "bypass": "AzureServices",
    }
    assert "publicNetworkAccess" not in body(resources["storage"])["properties"]
    assert body(resources["lifecycleTopic"])["properties"]["publicNetworkAccess"] == "Enabled"
    assert body(resources["app"])["properties"]["virtualNetworkSubnetId"] is None  # null: no VNet integration


def test_the_private_mode_integrates_the_app_and_closes_storage_and_the_topic():
    main = parsed("private")
    resources = main["resources"]
    assert set(resources) == TODAY_RESOURCES  # the same resources, set differently, plus the modules below
    assert body(resources["app"])["properties"]["virtualNetworkSubnetId"] == "integrationSubnetId"
    assert body(resources["storage"])["properties"]["networkAcls"]["defaultAction"] == "Deny"
    assert body(resources["lifecycleTopic"])["properties"]["publicNetworkAccess"] == "Disabled"
    assert body(resources["lifecycleTopic"])["properties"]["disableLocalAuth"] is True
    assert {"workspace", "network", "mlDnsLinks"} <= set(main["modules"])
    assert "monitorScope" not in main["modules"]  # no AMPLS named
    network = main["modules"]["network"]
    assert condition(network) is None
    params = network["config"]["params"]
    assert params["integrationSubnetId"] == "integrationSubnetId"
    assert params["privateEndpointSubnetId"] == "privateEndpointSubnetId"
    assert mentions(params["storageAccountId"], "storage")
    assert mentions(params["lifecycleTopicId"], "lifecycleTopic")


def test_private_endpoints_and_zone_groups_for_every_storage_service_and_the_topic():
    net = parsed("private", "network.bicep")
    assert net["variables"]["storageServices"]["value"] == ["blob", "table", "queue"]
    resources = net["resources"]
    storage_pe = body(resources["storageEndpoints"])
    assert resources["storageEndpoints"]["config"]["loop_type"]["detail"]["array_name"] == "storageServices"
    assert storage_pe["properties"]["subnet"] == {"id": "privateEndpointSubnetId"}
    (connection,) = storage_pe["properties"]["privateLinkServiceConnections"]
    assert connection["properties"]["privateLinkServiceId"] == "storageAccountId"
    assert connection["properties"]["groupIds"] == ["service"]  # one endpoint per service
    groups = resources["storageZoneGroups"]
    assert groups["type"] == "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
    assert groups["config"]["loop_type"]["detail"]["array_name"] == "storageServices"
    assert mentions(body(groups)["parent"], "storageEndpoints")
    topic_pe = body(resources["topicEndpoint"])
    assert condition(resources["topicEndpoint"]) is None  # resolved: the topic is on by default
    (connection,) = topic_pe["properties"]["privateLinkServiceConnections"]
    assert connection["properties"]["groupIds"] == ["topic"]
    assert body(resources["topicZoneGroup"])["parent"] == "topicEndpoint"


def test_zone_names_are_the_documented_private_link_zones():
    """Microsoft Learn, "Azure Private Endpoint private DNS zone values": Storage blob/table/queue
    privatelink.<service>.core.windows.net, Event Grid topics privatelink.eventgrid.azure.net."""
    text = (INFRA / "network.bicep").read_text()
    assert "'privatelink.${service}.${environment().suffixes.storage}'" in text
    assert "var topicZone = 'privatelink.eventgrid.azure.net'" in text
    raw = parse("network.bicep")["resources"]
    for name in ("zones", "zoneLinks"):  # created and linked here only when no central zones are named
        assert mentions(condition(raw[name]), "privateDnsZonesResourceGroup"), name
    assert raw["zones"]["type"] == "Microsoft.Network/privateDnsZones"
    net = parsed("private", "network.bicep")  # default: no central zones, so they are created
    assert condition(net["resources"]["zones"]) is None
    links = body(net["resources"]["zoneLinks"])
    assert links["properties"]["virtualNetwork"] == {"id": "virtualNetworkId"}
    assert links["properties"]["registrationEnabled"] is False


def test_central_zones_are_used_not_created_and_may_be_in_another_subscription():
    """With an AMPLS the VNet already has privatelink.blob.core.windows.net linked (its own zones):
    a second zone of that name cannot be linked, so central zones are named (hub-and-spoke: in the
    connectivity subscription) and none is created."""
    net = parsed("private-everything", "network.bicep")
    assert "zones" not in net["resources"]
    assert "zoneLinks" not in net["resources"]
    text = (INFRA / "network.bicep").read_text()
    zone_id = "resourceId(zonesSubscription, privateDnsZonesResourceGroup, 'Microsoft.Network/privateDnsZones', zone)"
    assert zone_id in text
    module = parsed("private-everything")["modules"]["network"]["config"]["params"]
    assert module["privateDnsZonesResourceGroup"] == "privateDnsZonesResourceGroup"
    assert module["privateDnsZonesSubscriptionId"] == "privateDnsZonesSubscriptionId"


def test_the_ml_workspace_zones_are_linked_to_the_apps_vnet():
    link = parsed("private", "dns-link.bicep")["resources"]["link"]
    assert link["type"] == "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
    assert body(link)["properties"]["virtualNetwork"] == {"id": "virtualNetworkId"}
    module = parsed("private")["modules"]["mlDnsLinks"]
    assert module["config"]["loop_type"]["detail"]["array_name"] == "mlPrivateDnsZoneIds"
    assert condition(module) is None
    assert "mlDnsLinks" not in parsed("public")["modules"]


def test_the_apps_monitor_resources_join_the_private_link_scope_when_one_is_named():
    main = parsed("private-everything")
    module = main["modules"]["monitorScope"]
    linked = module["config"]["params"]["linkedResourceIds"]
    assert len(linked) == 2
    assert mentions(linked[0], "logs")
    assert mentions(linked[1], "insights")
    scoped = parsed("private-everything", "monitor-scope.bicep")["resources"]["scoped"]
    assert scoped["type"] == "Microsoft.Insights/privateLinkScopes/scopedResources"
    assert body(scoped)["properties"] == {"linkedResourceId": "id"}
    assert "monitorScope" not in parsed("public-everything")["modules"]


def test_the_inputs_account_gets_a_blob_reader_grant_only_when_named():
    assert "predictionInputsReader" not in parsed("public")["modules"]
    assert "predictionInputsReader" not in parsed("private")["modules"]
    module = parsed("public-everything")["modules"]["predictionInputsReader"]
    assert mentions(module["config"]["params"]["principalId"], "app")
    reader = parsed("public-everything", "blob-reader.bicep")
    assert reader["variables"]["storageBlobDataReader"]["value"] == STORAGE_BLOB_DATA_READER
    grant = reader["resources"]["reader"]
    assert body(grant)["scope"] == "inputs"
    assert mentions(body(grant)["properties"]["roleDefinitionId"], "storageBlobDataReader")
    assert body(grant)["properties"]["principalType"] == "ServicePrincipal"


def test_azd_sets_the_option_with_one_variable_and_passes_the_network_parameters():
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["networkIsolation"]["value"] == "${NETWORK_ISOLATION=false}"
    for name in (
        "integrationSubnetId",
        "privateEndpointSubnetId",
        "privateDnsZonesResourceGroup",
        "mlPrivateDnsZoneIds",
        "monitorPrivateLinkScopeId",
        "predictionInputsStorageId",
    ):
        assert name in params, name
        assert re.fullmatch(r"\$\{[A-Z_]+=(|\[\])\}", params[name]["value"]), params[name]
    text = (INFRA / "main.bicep").read_text()
    assert "param networkIsolation bool = false" in text


def test_the_network_module_refuses_a_missing_subnet():
    """With the option on and no subnet given, ARM fails the module's parameter check (minLength)
    with the parameter's name, instead of deploying a half-private app."""
    params = parsed("private", "network.bicep")["parameters"]
    for name in ("integrationSubnetId", "privateEndpointSubnetId", "storageAccountId"):
        decorators = json.dumps(params[name]["decorators"])
        assert "minLength" in decorators or "min_length" in decorators, (name, decorators)


def test_docs_describe_the_private_topology():
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text()
    section = ops[ops.index("## Private network") :]
    assert "```mermaid" in section
    assert "azd env set NETWORK_ISOLATION true" in section
    assert "privatelink.api.azureml.ms" in section
