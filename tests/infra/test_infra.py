"""Static checks of the infrastructure: every checkov skip has a reason, and the app
settings the Bicep sets are exactly the ones shared/settings.py reads (less the dev-only ones)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.settings import DEV_ONLY, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


# checkov runs over both modes of the template (public and networkIsolation), each written out with
# its parameters fixed: tests/infra/test_network_isolation.py explains why the raw infra/ is not scanned.


def test_every_checkov_skip_has_a_reason():
    skips = [
        line.strip() for f in INFRA.glob("*.bicep") for line in f.read_text().splitlines() if "checkov:skip" in line
    ]
    assert skips
    for skip in skips:
        match = re.match(r"// checkov:skip=(CKV2?_AZURE_\d+):(.+)$", skip)
        assert match, skip
        assert len(match[2].strip()) > 20, f"a skip needs a reason: {skip}"


def test_bicep_sets_exactly_the_settings_the_app_reads():
    text = (INFRA / "main.bicep").read_text()
    set_by_bicep = set(re.findall(r"\{ name: '(SAFE_ROLLOUT_[A-Z_]+)'", text))
    assert set_by_bicep == set(SETTINGS) - DEV_ONLY, (
        f"missing in Bicep: {sorted(set(SETTINGS) - DEV_ONLY - set_by_bicep)}; "
        f"unknown to the app: {sorted(set_by_bicep - set(SETTINGS))}"
    )
    # identity-based host storage, as Flex Consumption expects
    assert "AzureWebJobsStorage__accountName" in text
    assert "AzureWebJobsStorage'" not in text


def test_event_subscription_takes_every_model_registration_and_the_app_matches_the_targets():
    """Event Grid's filters cannot express the policy file's globs: the subscription filters on the
    event type only and the app matches models (tests/infra/test_event_wiring.py has the details)."""
    workspace = (INFRA / "workspace.bicep").read_text()
    assert "Microsoft.MachineLearningServices.ModelRegistered" in workspace
    assert "advancedFilters" not in workspace
    assert "targetModels" not in (INFRA / "main.bicep").read_text()


def test_azd_parameters_cover_every_required_bicep_parameter():
    text = (INFRA / "main.bicep").read_text()
    required = set(re.findall(r"^param (\w+) \w+$", text, re.M))
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert required <= set(params), sorted(required - set(params))


def test_the_action_group_calls_the_alert_webhook_with_that_functions_own_key_not_a_host_key():
    """A host key opens every function of the app; the action group only needs the webhook's key."""
    bicep = {f.name: f.read_text() for f in INFRA.glob("*.bicep")}
    (uri,) = [line.strip() for line in bicep["workspace.bicep"].splitlines() if "serviceUri:" in line]
    source = (ROOT / "functions" / "alert_webhook.py").read_text()
    name = re.search(r'function_name\("(\w+)"\)', source)[1]
    route = re.search(r'route\(route="(\w+)"', source)[1]
    assert f"/api/{route}?" in uri
    assert f"&code=${{listKeys('${{functionAppId}}/functions/{name}', '2023-12-01').default}}" in uri
    for text in bicep.values():
        assert "/host/default" not in text
        assert "functionKeys" not in text
        assert "masterKey" not in text
