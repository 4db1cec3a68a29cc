"""Timer: the dispatcher. Every tick (default every minute; SAFE_ROLLOUT_RECONCILE_SCHEDULE) it
finds the due rollouts and enqueues work items (batches sharing a subscription and region) on the
Storage queue SAFE_ROLLOUT_WORK_QUEUE; functions/judge_queue.py judges them, on as many instances
as the Functions host scales out to. A timer runs on one instance only; the queue spreads the work.
"""

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
    from shared.dispatcher import dispatch
    from shared.queue_wiring import batch_size, get_work_queue

    if timer.past_due:
        log.warning("reconcile tick is running late")
    report = dispatch(get_service(), get_work_queue(), batch_size())
    # Starts "tick: " as every tick did (infra/queries/ticks.kql: none at all means the timer is not
    # running); the per-item judgement lines come from functions/judge_queue.py.
    log.info(
        "tick: %d due, %d work item(s) enqueued, %d in the poison queue%s",
        report.due,
        report.enqueued,
        len(report.poisoned),
        f" (poison queue not read: {report.poison_error})" if report.poison_error else "",
    )
