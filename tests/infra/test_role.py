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
