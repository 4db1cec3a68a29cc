"""`python -m demo`: start Azurite and the emulator, run the story with a live view, write the report.

Exits non-zero if any outcome differs from the story's. Every process it starts is stopped by PID,
also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demo.story import demo_environment, run_story
from demo.view import LiveView
from emulator.azurite import running_azurite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run five real rollouts against the local Azure emulator")
    parser.add_argument("--report", type=Path, default=Path("reports/demo-report.html"))
    parser.add_argument("--plain", action="store_true", help="print decisions as lines instead of a live view")
    args = parser.parse_args(argv)
    try:
        with quiet():
            return _run(args)
    except KeyboardInterrupt:
        print("interrupted: Azurite and the emulator were stopped", file=sys.stderr)
        return 130


@contextmanager
def quiet() -> Iterator[None]:
    """No log output and no warnings in the demo's process while the story runs: the view tells it.

    Setting levels on a few loggers is not enough: azure-ai-ml gives some of its module loggers
    (azure.ai.ml, azure.ai.ml._utils._endpoint_utils, ...) their own INFO level and a stderr handler,
    so "Check: endpoint ... exists" and polling dots would cut through the live view and the plain
    lines. `logging.disable` holds for every logger, whatever its level or handler, and is undone on exit.
    """
    previous = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(previous)


def _run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    view = LiveView(plain=args.plain or not sys.stdout.isatty())
    with (
        tempfile.TemporaryDirectory(prefix="safe-rollout-demo-") as tmp,
        running_azurite() as azurite,
        running_azurite(service="blob") as blobs,  # blue's data collector output (demo/shadow_story.py)
        running_azurite(service="queue") as queues,  # the timer's work items for the queue worker
    ):
        view.say(f"Azurite and the emulator's HTTPS server are up (work dir {tmp})")
        with (
            demo_environment(azurite, Path(tmp), blob_connection=blobs, queue_connection=queues) as env,
            view.running(env),
        ):
            outcomes = run_story(env)
            ids = [o.rollout_id for o in outcomes if o.rollout_id]
            html = env.service.report(ids, title="Safe Rollout demo: five versions of fraud-model")
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(html)
    view.summary(outcomes, args.report, time.monotonic() - began)
    errors = env.queue_errors
    failed = f"; {len(errors)} failed and were redelivered: {errors[:3]}" if errors else ""
    view.say(f"work items through Azurite's queue service to the queue worker: {env.queue_delivered}{failed}")
    return 0 if all(o.ok for o in outcomes) and not env.queue_errors else 1


if __name__ == "__main__":
    sys.exit(main())
