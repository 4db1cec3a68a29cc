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
    # Where the app runs: False is the public network; True a VNet linked to the workspace's private
    # DNS zone (privatelink.api.azureml.ms), as infra/'s networkIsolation deploys it.
    app_in_private_network: bool = False

    def resolves(self, host: str) -> bool:
        """DNS as the app sees it. The scoring name of an endpoint whose publicNetworkAccess is
        Disabled is reached only through the workspace's private endpoint: inside the VNet it is a
        CNAME to `<endpoint>.<workspace-guid>.inference.<region>.privatelink.api.azureml.ms` in the
        private zone (Learn, "How to use your workspace with a custom DNS server"); from elsewhere the
        documented symptom is "Scoring endpoint can't be resolved" (Learn, "Troubleshoot online
        endpoint deployment and scoring", Network isolation issues). Everything else resolves."""
        lowered = host.lower()
        if self.app_in_private_network or not lowered.endswith(".inference.ml.azure.com"):
            return True
        ep = self.endpoints.get(lowered.split(".", maxsplit=1)[0])
        return ep is None or str(ep.body["properties"].get("publicNetworkAccess") or "Enabled").lower() != "disabled"

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
