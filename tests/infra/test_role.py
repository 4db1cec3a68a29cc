"""The custom role on the Azure ML workspace holds every action the app's Azure ML calls need, and
only documented operations.

Sources:
- operations: "Azure permissions for AI + machine learning", Microsoft.MachineLearningServices
  https://learn.microsoft.com/azure/role-based-access-control/permissions/ai-machine-learning
  (MicrosoftDocs/azure-docs articles/role-based-access-control/permissions/ai-machine-learning.md)
- which action each call needs: "Authentication and authorization for online endpoints"
  https://learn.microsoft.com/azure/machine-learning/concept-endpoints-online-auth
  (MicrosoftDocs/azure-ai-docs articles/machine-learning/concept-endpoints-online-auth.md): read,
  create/update, delete; `token/action` to fetch an `aml_token`, `listKeys/action` to fetch a key,
  `score/action` to call a managed endpoint with a Microsoft Entra token (`aad_token`).
- data assets and datastores (shared/adapters/data_asset_inputs.py, plain ARM GETs): the same page
  lists `workspaces/data/read` ("Reads Data container"), `workspaces/data/versions/read` ("Reads
  Data Versions") and `workspaces/datastores/read` ("Gets datastores"); `datastores/listsecrets/action`
  is not needed (the app reads the blobs with its own identity, not the datastore's credentials).
- azure-ai-ml 1.35 `OnlineEndpointOperations.get_keys` -> `_get_online_credentials`: reads the
  endpoint, then `list_keys` (auth mode `key`), the caller's own Entra token (`aad_token`), or
  `get_token` (`aml_token`) (SDK source azure/ai/ml/operations/_online_endpoint_operations.py).
"""

from __future__ import annotations

import ast

from tests.infra.bicep import ROOT, body, resources

P = "Microsoft.MachineLearningServices/"
W = P + "workspaces/"

# Every Microsoft.MachineLearningServices operation the role may hold, as documented (the page above).
DOCUMENTED = {
    W + "read",
    W + "onlineEndpoints/read",
    W + "onlineEndpoints/write",
    W + "onlineEndpoints/delete",
    W + "onlineendpoints/token/action",
    W + "onlineendpoints/listkeys/action",
    W + "onlineEndpoints/score/action",
    W + "onlineEndpoints/deployments/read",
    W + "onlineEndpoints/deployments/write",
    W + "onlineEndpoints/deployments/delete",
    W + "models/versions/read",
    W + "environments/versions/read",
    W + "codes/versions/read",
    W + "data/read",
    W + "data/versions/read",
    W + "datastores/read",
    P + "locations/mfeOperationsStatus/read",
    P + "locations/mfeOperationResults/read",
}

# What the app calls (shared/adapters/azureml.py) -> the actions it needs.
NEEDS: dict[str, set[str]] = {
    # azure-ai-ml builds its clients from the workspace (GET workspace for its location)
    "MLClient / workspace GET": {W + "read"},
    "online_endpoints.get": {W + "onlineEndpoints/read"},
    "online_deployments.list": {W + "onlineEndpoints/deployments/read"},
    "online_deployments.get": {W + "onlineEndpoints/deployments/read"},
    # a copied deployment references blue's model, environment and code assets
    "online_deployments.begin_create_or_update": {
        W + "onlineEndpoints/deployments/write",
        W + "models/versions/read",
        W + "environments/versions/read",
        W + "codes/versions/read",
    },
    "online_deployments.begin_delete": {W + "onlineEndpoints/deployments/delete"},
    # key auth -> listKeys; aml_token -> token; aad_token -> score with the app's own Entra token
    "online_endpoints.get_keys": {
        W + "onlineEndpoints/read",
        W + "onlineEndpoints/listKeys/action",
        W + "onlineEndpoints/token/action",
        W + "onlineEndpoints/score/action",
    },
    # plain ARM REST: GET endpoint / deployment, PUT endpoint (traffic) / deployment (copy), PATCH tags
    'HttpRequest("GET"': {W + "onlineEndpoints/read", W + "onlineEndpoints/deployments/read"},
    'HttpRequest("PUT"': {W + "onlineEndpoints/write", W + "onlineEndpoints/deployments/write"},
    'HttpRequest("PATCH"': {W + "onlineEndpoints/deployments/write"},
    'HttpRequest("DELETE"': {W + "onlineEndpoints/deployments/delete"},
    # a smoke test's request to the scoring URI (not ARM): aad_token endpoints check score/action
    'HttpRequest("POST"': {W + "onlineEndpoints/score/action"},
    # long-running operations (Azure-AsyncOperation / Location headers of PUT and DELETE)
    "LRO polling": {P + "locations/mfeOperationsStatus/read", P + "locations/mfeOperationResults/read"},
}

# The ARM GETs of shared/adapters/data_asset_inputs.py (`self._get(endpoint, f"{base}/...", ...)`, base
# being a workspace's ARM id), as path templates with `{}` for each interpolated part -> the actions.
ARM_GETS: dict[str, set[str]] = {
    "GET {}/data/{}": {W + "data/read"},  # the data container, for `@latest` (properties.latestVersion)
    "GET {}/data/{}/versions/{}": {W + "data/versions/read"},  # dataType, dataUri
    "GET {}/datastores/{}": {W + "datastores/read"},  # account and container (no listsecrets)
}
NEEDS.update(ARM_GETS)


def _role_actions() -> set[str]:
    (role,) = resources("workspace.bicep", "Microsoft.Authorization/roleDefinitions").values()
    (permissions,) = body(role)["properties"]["permissions"]
    return {a.lower() for a in permissions["actions"]}


def _calls_in_the_gateway() -> set[str]:
    """`online_endpoints.x(...)`, `online_deployments.x(...)` and `HttpRequest("VERB", ...)` calls."""
    tree = ast.parse((ROOT / "shared" / "adapters" / "azureml.py").read_text())
    calls: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Attribute)
            and func.value.attr in ("online_endpoints", "online_deployments")
        ):
            calls.add(f"{func.value.attr}.{func.attr}")
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name == "HttpRequest" and node.args and isinstance(node.args[0], ast.Constant):
            calls.add(f'HttpRequest("{node.args[0].value}"')
    return calls


def _gets_in_data_asset_inputs() -> set[str]:
    """The path templates of `self._get(endpoint, <path>, ...)` calls in data_asset_inputs.py."""
    tree = ast.parse((ROOT / "shared" / "adapters" / "data_asset_inputs.py").read_text())
    gets: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_get"):
            continue
        path = node.args[1]
        assert isinstance(path, ast.JoinedStr), f"not an f-string path, cannot check it: {ast.unparse(path)}"
        parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in path.values]
        gets.add("GET " + "".join(str(p) for p in parts))
    return gets


def _verbs_in_data_asset_inputs() -> set[str]:
    tree = ast.parse((ROOT / "shared" / "adapters" / "data_asset_inputs.py").read_text())
    return {
        str(node.args[0].value) if isinstance(node.args[0], ast.Constant) else ast.unparse(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "HttpRequest"
    }


def test_every_arm_get_of_the_data_asset_inputs_is_accounted_for_and_allowed():
    gets = _gets_in_data_asset_inputs()
    assert gets, "found no ARM GETs in data_asset_inputs.py: the scan no longer matches the code"
    unknown = gets - set(ARM_GETS)
    assert not unknown, f"map these ARM GETs to the actions they need (and add those to the role): {sorted(unknown)}"
    held = _role_actions()
    missing = {f"{get}: {a}" for get in gets for a in ARM_GETS[get] if a.lower() not in held}
    assert not missing, sorted(missing)
    # it only reads: a write would need other actions
    assert _verbs_in_data_asset_inputs() == {"GET"}


def test_the_role_does_not_read_datastore_secrets():
    assert not any("listsecrets" in a for a in _role_actions())


def test_the_role_holds_every_action_the_apps_calls_need():
    held = _role_actions()
    missing = {f"{call}: {a}" for call, actions in NEEDS.items() for a in actions if a.lower() not in held}
    assert not missing, sorted(missing)


def test_the_token_action_for_aml_token_endpoints_is_there():
    assert (W + "onlineEndpoints/token/action").lower() in _role_actions()


def test_every_call_the_gateway_makes_is_accounted_for():
    unknown = _calls_in_the_gateway() - set(NEEDS)
    assert not unknown, f"map these calls to the actions they need (and add those to the role): {sorted(unknown)}"


def test_the_role_holds_only_documented_operations():
    documented = {a.lower() for a in DOCUMENTED}
    assert _role_actions() <= documented, sorted(_role_actions() - documented)
