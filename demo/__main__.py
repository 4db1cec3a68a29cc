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
from pathlib import Path

from demo.story import demo_environment, run_story
from demo.view import LiveView
from emulator.azurite import running_azurite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run four real rollouts against the local Azure emulator")
    parser.add_argument("--report", type=Path, default=Path("reports/demo-report.html"))
    parser.add_argument("--plain", action="store_true", help="print decisions as lines instead of a live view")
    args = parser.parse_args(argv)
    quiet = ("azure", "safe_rollout", "safe_rollout.events", "safe_rollout.functions")
    levels = {name: logging.getLogger(name).level for name in quiet}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in quiet:  # the view tells the story; the app's own logs would drown it
                logging.getLogger(name).setLevel(logging.CRITICAL)
            return _run(args)
    except KeyboardInterrupt:
        print("interrupted: Azurite and the emulator were stopped", file=sys.stderr)
        return 130
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    view = LiveView(plain=args.plain or not sys.stdout.isatty())
    with tempfile.TemporaryDirectory(prefix="safe-rollout-demo-") as tmp, running_azurite() as azurite:
        view.say(f"Azurite and the emulator's HTTPS server are up (work dir {tmp})")
        with demo_environment(azurite, Path(tmp)) as env, view.running(env):
            outcomes = run_story(env)
            ids = [o.rollout_id for o in outcomes if o.rollout_id]
            html = env.service.report(ids, title="Safe Rollout demo: four versions of fraud-model")
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(html)
    view.summary(outcomes, args.report, time.monotonic() - began)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
