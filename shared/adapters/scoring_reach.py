"""Whether a scoring request reached the endpoint at all, and what to tell people when it did not.

The smoke test and the prediction comparison POST to the endpoint's scoring URI exactly as Azure
returns it (`https://<endpoint>.<region>.inference.ml.azure.com/score`); with a private endpoint the
name resolves to the workspace private endpoint's address through the private DNS zone linked to the
app's VNet (docs/OPERATIONS.md, "Private network"). When the app is not in that network, the request
never gets an answer from the deployment, and that is not green's fault:

- nothing was sent (azure-core `ServiceRequestError`: the name did not resolve, the connection was
  refused or timed out, TLS failed), or
- the endpoint's `publicNetworkAccess` is `Disabled` and Azure refused a request that came over the
  public network with HTTP 403 (docs/AZURE-FACTS-USED.md, "Network isolation of managed online
  endpoints").

Either way the check cannot run: the caller raises ProviderError with the reason, so the stage
holds (and its time limit applies); a request that was sent and failed after (azure-core
`ServiceResponseError`, a 5xx, a 424) is still that deployment's error.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlsplit

from shared.ports import ProviderError


class ScoringTarget(NamedTuple):
    """Where and how to send scoring requests to one endpoint."""

    uri: str  # the scoring URI as Azure returns it
    secret: str  # the endpoint's key (auth mode key) or AML token (aml_token)
    pipeline: Any  # an unauthenticated azure-core pipeline: the secret goes in the header
    public_access: str = "Enabled"  # the endpoint's publicNetworkAccess


def never_sent(exc: BaseException) -> bool:
    """True if azure-core could not send the request at all (DNS, connect, TLS)."""
    from azure.core.exceptions import ServiceRequestError

    return isinstance(exc, ServiceRequestError)


def refused_for_network(status: int, target: ScoringTarget) -> bool:
    """A 403 from an endpoint that takes no public traffic: the request came the wrong way."""
    return status == 403 and target.public_access.lower() == "disabled"


def unreachable(target: ScoringTarget, what: str, cause: str) -> ProviderError:
    """The error the caller raises: names the URI, the cause and what to check."""
    host = urlsplit(target.uri).hostname or target.uri
    if target.public_access.lower() == "disabled":
        hint = (
            "the endpoint's public network access is Disabled, so it answers only through the workspace's "
            f"private endpoint: the app must run in a VNet where {host} resolves to that private endpoint "
            "(networkIsolation in infra/, docs/OPERATIONS.md, Private network)"
        )
    else:
        hint = f"check that {host} resolves and is reachable from the app's network"
    return ProviderError(f"{what} cannot reach the scoring URI {target.uri}: {cause}; {hint}")
