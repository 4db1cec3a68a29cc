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
    from shared.payloads import PayloadError, parse_model_registered

    # The binding hands over a CloudEvent when the delivery used that schema.
    event_type = getattr(event, "event_type", None) or getattr(event, "type", "")
    source = getattr(event, "topic", None) or getattr(event, "source", None)
    try:
        data = event.get_json()
    except ValueError:
        data = None
    try:
        registration = parse_model_registered(
            event_id=str(event.id), event_type=str(event_type), subject=event.subject, source=source, data=data
        )
    except PayloadError as exc:
        log.warning("rejected event %s (%s): %s", event.id, event_type, exc)
        return
    try:
        outcome = get_service().start(registration)
    except Exception as exc:
        log.error("event %s for %s not handled, Event Grid will retry it: %s", event.id, registration.model.label, exc)
        raise
    log.info("event %s for %s: %s: %s", event.id, registration.model.label, outcome.status, outcome.message)
