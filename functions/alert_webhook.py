"""Azure Monitor alert webhook (common alert schema): Fired rolls back at once, Resolved is recorded.

Needs the function key and the shared secret in the `secret` query parameter (action-group
webhooks cannot add headers), compared in constant time.

Action groups retry a webhook only on 408, 429, 503, 504 or no answer (docs/AZURE-FACTS-USED.md),
so anything that stops the rollback from landing now (a lost race, storage or Azure unavailable,
a missing setting, a bug) answers 503 with Retry-After: the rollback is attempted again.

An alert is tied to an endpoint by its targets (`alertTargetIDs`: the endpoint or deployment for
metric alerts and resource-centric log alerts) or by its dimensions (log search alerts scoped to a
Log Analytics workspace target the workspace; their `_ResourceId` or `EndpointName` column names the
endpoint, `DeploymentName` the deployment). An alert that names no online endpoint is acknowledged
(200) with the reason logged: a retry would not make it name one.
"""

import hmac
import logging

import azure.functions as func

from functions.http import json_response, problem, retry_later

bp = func.Blueprint()
log = logging.getLogger("safe_rollout.functions")


@bp.function_name("alert_webhook")
@bp.route(route="alerts", methods=["POST"])
def alert_webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import alert_secret, get_service
    from shared.payloads import PayloadError, parse_alert, tie_to_endpoints
    from shared.ports import ConflictError, ProviderError

    expected = alert_secret()
    if expected is None:
        log.error("alert rejected: SAFE_ROLLOUT_ALERT_SECRET is not set (16+ characters)")
        return problem(503, "Not configured", "the alert webhook has no shared secret configured")
    given = req.params.get("secret", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("alert rejected: wrong or missing shared secret")
        return problem(401, "Unauthorized", "missing or wrong `secret` query parameter")
    try:
        notice = parse_alert(req.get_body())
    except PayloadError as exc:
        log.warning("alert rejected: %s", exc)
        return problem(400, "Bad alert", str(exc))
    try:
        service = get_service()
        known = (
            {s.rollout.endpoint.arm_id.lower() for s in service.store.find(due_only=True)}
            if notice.needs_endpoint_lookup
            else set()
        )
        notice, why_not = tie_to_endpoints(notice, known)
        if why_not is not None:
            log.info(
                "alert %s (%s, %s) acknowledged, nothing to roll back: %s",
                notice.alert_id,
                notice.rule,
                notice.condition,
                why_not,
            )
            return json_response(
                {"alertId": notice.alert_id, "condition": notice.condition, "rollouts": [], "reason": why_not}
            )
        outcomes = service.alert(notice)
    except ConflictError as exc:
        log.warning("alert %s not applied yet, asking for a retry: %s", notice.alert_id, exc)
        return retry_later("Busy", str(exc))
    except ProviderError as exc:
        log.warning("alert %s not applied: Azure or storage unavailable, asking for a retry: %s", notice.alert_id, exc)
        return retry_later("Unavailable", "Azure or the rollout state store could not be reached; retry")
    except Exception:
        log.exception("alert %s not applied: unexpected error, asking for a retry", notice.alert_id)
        return retry_later("Not applied", "the alert could not be applied; retry")
    log.info("alert %s %s: %s", notice.alert_id, notice.condition, outcomes or "no matching rollout")
    return json_response({"alertId": notice.alert_id, "condition": notice.condition, "rollouts": outcomes})
