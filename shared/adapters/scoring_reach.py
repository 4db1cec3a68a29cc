"""Whether a scoring request reached the endpoint at all, and what to tell people when it did not.

The smoke test and the prediction comparison POST to the endpoint's scoring URI exactly as Azure
returns it (`https://<endpoint>.<region>.inference.ml.azure.com/score`); with a private endpoint the
name resolves to the workspace private endpoint's address through the private DNS zone linked to the
app's VNet (docs/OPERATIONS.md, "Private network"). When the app is not in that network, the request
never gets an answer from the deployment, and that is not green's fault:

- nothing was sent (azure-core `ServiceRequestError`: the name did not resolve, the connection was
  refused or timed out, TLS failed), or
- the endpoint's `publicNetworkAccess` is `Disabled` and Azure refused a request that came over the
  public network: a 403, or the same 401, 403 or 404 for blue (which serves users) as for green.
  Which status Azure uses is not documented (docs/AZURE-FACTS-USED.md, "Network isolation of
  managed online endpoints"), so the rule does not depend on it.

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


# A scoring request waits at most this long to connect and for the answer (seconds): a private
# address that drops packets must not hold a tick for azure-core's default 300 s (connect) and the
# retry policy's 60 s; the deployment's own requestTimeout is 5 s by default (at most 180 s).
SCORING_TIMEOUTS = {"connection_timeout": 10, "read_timeout": 60}
REFUSALS = (401, 403, 404)  # what a front door can answer before any deployment sees the request


def refused_for_network(status: int, target: ScoringTarget) -> bool:
    """A 403 from an endpoint that takes no public traffic: the request came the wrong way."""
    return status == 403 and target.public_access.lower() == "disabled"


def refused_alike(blue_status: int, green_status: int, target: ScoringTarget) -> bool:
    """Blue, which serves users, and green refused the same request with the same 401, 403 or 404
    from an endpoint that takes no public traffic: the request did not come through the private
    endpoint, whatever status Azure uses for that (undocumented), and neither deployment is to blame."""
    return (
        target.public_access.lower() == "disabled" and blue_status == green_status and blue_status in REFUSALS
    )


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
