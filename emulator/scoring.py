"""Online endpoint scoring (https://{endpoint}.{region}.inference.ml.azure.com/score), honouring
the `azureml-model-deployment` header. A mixin of emulator.azure.Emulator.

A request with the header goes to that deployment whatever the split (Microsoft Learn, "Safe
rollout for online endpoints": "you can send traffic directly to the green deployment by
specifying its name in the header, even at 0% traffic"; az ml online-endpoint invoke
--deployment-name). It is served, and counted in the deployment's metrics and traffic log, like
any request (direct requests are real requests to the deployment's instances). The answer is the
deployment's scenario's Predictor applied to the body (emulator/predictor.py), or [0.5] for a
scenario without one.
"""

from __future__ import annotations

from typing import Any

from emulator.responses import Response, _error, _json

SCORING_KEYS = ("emulator-key-1", "emulator-key-2")  # what listKeys answers (ml_control.py)
AML_TOKEN = "emulator-aml-token"  # noqa: S105 - a fake token, what POST .../token answers (ml_control.py)


class Scoring:
    # Where the app runs, for endpoints whose publicNetworkAccess is Disabled (they are reached only
    # through the workspace's private endpoint; Learn, "Network isolation with managed online
    # endpoints": "the endpoint can't be reached from public networks"):
    # - app_in_private_network False: the public network. The scoring name still resolves (Azure
    #   publishes the public CNAME chain; Learn, "Azure Private Endpoint DNS configuration") and the
    #   endpoint refuses the request with `public_refusal_status`. UNVERIFIED: which status and
    #   message Azure answers is not documented (docs/AZURE-FACTS-USED.md); 403 is our assumption,
    #   and tests set others.
    # - app_in_private_network True: a VNet whose DNS resolves the name to the private endpoint
    #   (CNAME `<endpoint>.<workspace-guid>.inference.<region>.privatelink.api.azureml.ms`; Learn, "How
    #   to use your workspace with a custom DNS server"), as infra/'s networkIsolation deploys it;
    #   with `private_dns_works` False its DNS servers do not forward `inference.ml.azure.com`, and no
    #   scoring name resolves (Learn, "Troubleshoot online endpoint deployment and scoring", Network
    #   isolation issues: "Scoring endpoint can't be resolved").
    app_in_private_network: bool = False
    private_dns_works: bool = True
    public_refusal_status: int = 403

    def resolves(self, host: str) -> bool:
        """DNS as the app sees it (only scoring names can fail to resolve)."""
        if not host.lower().endswith(".inference.ml.azure.com"):
            return True
        return not (self.app_in_private_network and not self.private_dns_works)

    def _refused_from_outside(self, endpoint: str) -> Response | None:
        props = self.endpoints[endpoint].body["properties"]
        if self.app_in_private_network or str(props.get("publicNetworkAccess") or "Enabled").lower() != "disabled":
            return None
        return _json(self.public_refusal_status, {"message": "the endpoint cannot be reached from public networks"})

    # -- scoring ----------------------------------------------------------------------------------

    def _unauthorized(self, endpoint: str, authorization: str) -> Response | None:
        """401 unless the request carries what the endpoint's auth mode asks for: `Bearer <key>`
        with one of the keys listKeys gives (Key), the token POST .../token gives (AMLToken), or any
        bearer token (AADToken: Entra ID checks it; the emulator cannot). Learn, "Troubleshoot online
        endpoint deployment and scoring", common error codes: "401 Unauthorized: You don't have
        permission to do the requested action, such as score, or your token is expired or in the
        wrong format"."""
        scheme, _, secret = authorization.partition(" ")
        mode = str(self.endpoints[endpoint].body["properties"].get("authMode") or "Key").lower()
        accepted = {"key": SCORING_KEYS, "amltoken": (AML_TOKEN,)}.get(mode)
        if scheme.lower() == "bearer" and secret and (accepted is None or secret in accepted):
            return None
        return _json(401, {"message": "Unauthorized: the key or token is missing, expired or not this endpoint's"})

    def _score(self, host: str, path: str, headers: dict[str, str], payload: Any = None) -> Response:
        endpoint = host.split(".", maxsplit=1)[0]
        if endpoint not in self.endpoints:
            return _error(404, "NotFound", "no such endpoint")
        if (outside := self._refused_from_outside(endpoint)) is not None:
            return outside
        lowered = {k.lower(): v for k, v in headers.items()}
        if (refused := self._unauthorized(endpoint, lowered.get("authorization", ""))) is not None:
            return refused
        deployment = lowered.get("azureml-model-deployment")
        direct = deployment is not None
        if deployment is None:
            # Users' requests follow the split that has landed; an endpoint update in flight does
            # not route anything yet (its PUT answered with the old traffic: tests/recordings).
            live = self.routed_split(endpoint).live
            if not live:
                return _error(503, "NoTraffic", "the endpoint routes no traffic")
            deployment = max(live, key=lambda d: live[d])
        if (endpoint, deployment.lower()) not in self.deployments:
            return _error(404, "DeploymentNotFound", f"deployment {deployment} not found")
        now = self.clock.now()
        status, latency = self.sim.answer(endpoint, deployment, now)
        scenario = self.sim.scenario(endpoint, deployment)
        if direct and scenario.predictor is not None:
            self.sim.record_direct(endpoint, deployment, now, status, latency)
        # The answer names the deployment that gave it (recorded scoring response header
        # `azureml-model-deployment`, tests/recordings/azure-ai-ml/...test_online_deployment.json).
        answered_by = {"azureml-model-deployment": self.deployments[(endpoint, deployment.lower())].body["name"]}
        if status != 200:
            return _json(status, {"message": "An unexpected error occurred in scoring script."}, answered_by)
        if scenario.predictor is not None:
            return _json(200, scenario.predictor.predict(payload), answered_by)
        return _json(200, [0.5], answered_by)
