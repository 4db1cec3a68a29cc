"""Queue worker: judge one work item (rollouts sharing a subscription and region) from the queue
the timer fills. The host runs several at once per instance (host.json extensions.queues) and
scales instances out with the queue's length.

Delivery is at least once: a message whose run fails or whose instance dies comes back (after
host.json `visibilityTimeout`, or the host's lease when an instance dies) and is judged again,
which is safe: saves are ETag-guarded and actions level-triggered. After `maxDequeueCount` failed
runs the host moves it to `<queue>-poison`; the timer reports what sits there."""

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger("safe_rollout.functions")


@bp.function_name("judge_queue")
@bp.queue_trigger(arg_name="msg", queue_name="%SAFE_ROLLOUT_WORK_QUEUE%", connection="SAFE_ROLLOUT_QUEUE")
def judge_queue(msg: func.QueueMessage) -> None:
    from shared.bootstrap import get_service
    from shared.dispatch import BadMessageError, parse_message

    try:
        item = parse_message(msg.get_body())
    except BadMessageError as exc:
        # Raised, so the host tries again and, after maxDequeueCount, parks it in the poison queue.
        log.error("work item %s refused (delivery %s): %s", msg.id, msg.dequeue_count, exc)
        raise
    service = get_service()
    if item.stale(service.clock.now()):
        log.warning("work item %s of tick %s is stale; later ticks cover its rollouts", msg.id, item.tick.isoformat())
        return
    report = service.reconcile_batch(item.rollouts, dispatched_at=item.tick)
    # The line the workbook and the failed-ticks alert parse (infra/queries/failed-ticks.kql).
    log.info(
        "tick: %d due, %d reconciled, %d conflicts, %d failed, %d deferred, %d metrics calls",
        report.due,
        report.reconciled,
        report.conflicts,
        report.failed,
        report.deferred,
        report.metrics_calls,
    )
    log.info(
        "work item %s (%s/%s, batch %d, delivery %s): %d throttled (left for the next tick), %d no longer due",
        msg.id,
        item.subscription,
        item.region or "-",
        item.batch,
        msg.dequeue_count,
        report.throttled,
        report.skipped,
    )
