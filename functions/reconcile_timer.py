"""Timer: reconcile every due rollout (default every minute; SAFE_ROLLOUT_RECONCILE_SCHEDULE)."""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("safe_rollout.functions")


@bp.function_name("reconcile_timer")
@bp.timer_trigger(
    arg_name="timer", schedule="%SAFE_ROLLOUT_RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def reconcile_timer(timer: func.TimerRequest) -> None:
    from shared.bootstrap import get_service

    if timer.past_due:
        log.warning("reconcile tick is running late")
    report = get_service().reconcile_all()
    log.info(
        "tick: %d due, %d reconciled, %d conflicts, %d failed, %d deferred, %d metrics calls",
        report.due,
        report.reconciled,
        report.conflicts,
        report.failed,
        report.deferred,
        report.metrics_calls,
    )
