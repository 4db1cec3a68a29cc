"""Online endpoint scoring (https://{endpoint}.{region}.inference.ml.azure.com/score), honouring
the `azureml-model-deployment` header. A mixin of emulator.azure.Emulator."""

from __future__ import annotations

from emulator.responses import Response, _error, _json


class Scoring:
    # -- scoring ----------------------------------------------------------------------------------

    def _score(self, host: str, path: str, headers: dict[str, str]) -> Response:
        endpoint = host.split(".", maxsplit=1)[0]
        if endpoint not in self.endpoints:
            return _error(404, "NotFound", "no such endpoint")
        lowered = {k.lower(): v for k, v in headers.items()}
        deployment = lowered.get("azureml-model-deployment")
        if deployment is None:
            # Users' requests follow the split that has landed; an endpoint update in flight does
            # not route anything yet (its PUT answered with the old traffic: tests/recordings).
            live = self.routed_split(endpoint).live
            if not live:
                return _error(503, "NoTraffic", "the endpoint routes no traffic")
            deployment = max(live, key=lambda d: live[d])
        if (endpoint, deployment.lower()) not in self.deployments:
            return _error(404, "DeploymentNotFound", f"deployment {deployment} not found")
        status, _ = self.sim.answer(endpoint, deployment, self.clock.now())
        # The answer names the deployment that gave it (recorded scoring response header
        # `azureml-model-deployment`, tests/recordings/azure-ai-ml/...test_online_deployment.json).
        answered_by = {"azureml-model-deployment": self.deployments[(endpoint, deployment.lower())].body["name"]}
        if status != 200:
            return _json(status, {"message": "An unexpected error occurred in scoring script."}, answered_by)
        return _json(200, [0.5], answered_by)
