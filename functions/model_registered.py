"""Event Grid trigger: a registered model version starts (or supersedes into) a rollout.

Accepts the Event Grid schema and CloudEvents. Unparseable events are logged and dropped (a retry
would not help). If the event cannot be handled now (Azure or storage unavailable, the policy file
missing or broken, a bug) the failure is logged and the function fails, so Event Grid retries it
(and dead-letters it after its last try); nothing has been written.
"""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("safe_rollout.functions")


@bp.function_name("model_registered")
@bp.event_grid_trigger(arg_name="event")
def model_registered(event: func.EventGridEvent) -> None:
    from shared.bootstrap import get_service
    from shared.payloads import MODEL_REGISTERED, PayloadError, parse_model_registered, read_event

    # The binding hands over a CloudEvent when the delivery used that schema (with a lower-case
    # `specversion`); read_event reads both and says what is missing when the binding lost it.
    seen = read_event(event)
    if seen.event_type != MODEL_REGISTERED:
        log.warning("ignored event %s (subject %r): %s", seen.event_id, seen.subject, seen.describe())
        return
    try:
        registration = parse_model_registered(
            event_id=seen.event_id,
            event_type=seen.event_type,
            subject=seen.subject,
            source=seen.source,
            data=seen.data,
        )
    except PayloadError as exc:
        log.warning("rejected event %s (%s): %s", seen.event_id, seen.describe(), exc)
        return
    try:
        outcome = get_service().start(registration)
    except Exception as exc:
        log.error("event %s for %s not handled, Event Grid will retry it: %s", event.id, registration.model.label, exc)
        raise
    log.info("event %s for %s: %s: %s", event.id, registration.model.label, outcome.status, outcome.message)
