"""`safe-rollout`: list, inspect, watch, start and override rollouts over the HTTP API; save their
reports; validate and dry-run policy files (these two need the repository: shared/ and demo/).

The API's base URL and function key come from SAFE_ROLLOUT_URL and SAFE_ROLLOUT_KEY (or --url and
--key). `-o json` prints the API's answer as JSON for scripts. Exit codes: 0 done, 1 the API refused
(4xx: unknown rollout, not allowed now, not started), 2 bad input or usage, 3 the service is
unavailable (5xx, or it cannot be reached).
"""

from __future__ import annotations

import getpass
import importlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cli.client import ApiRefusedError, Client, NoReportRouteError, Transport, UnavailableError, http_transport
from cli.watch import TERMINAL, frame

EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3
_ID = re.compile(r"^r-[0-9a-f]{20}$")
PHASES = (
    "Pending",
    "Mirroring",
    "Canary",
    "Baking",
    "AwaitingApproval",
    "Paused",
    "Aborted",
    "RollingBack",
    "Succeeded",
    "RolledBack",
    "Failed",
    "Superseded",
)
ACTIONS = ("approve", "pause", "resume", "promote", "promote-full", "rollback", "abort", "retry")


HELP = {
    "approve": "Approve the stage an approval gate holds.",
    "pause": "Pause a rollout where it is.",
    "resume": "Resume a paused or aborted rollout.",
    "promote": "Skip to the next stage now.",
    "promote-full": "Send all traffic to green now (then bake).",
    "rollback": "Send all traffic back to blue and end the rollout.",
    "abort": "Send traffic back to blue, keep green (retry restarts the analysis).",
    "retry": "Restart the analysis of an aborted rollout.",
}


class State:
    def __init__(self, make_transport: Callable[[], Transport], output: str, console: Console) -> None:
        self._make_transport = make_transport
        self._client: Client | None = None
        self.output = output
        self.console = console

    @property
    def client(self) -> Client:
        """Made at first use, so `--help` needs no URL."""
        if self._client is None:
            self._client = Client(self._make_transport())
        return self._client


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"safe-rollout: {message}", err=True)
    sys.exit(code)


def _run(work: Callable[[], Any]) -> Any:
    """Run a request; the API's refusals and outages become the documented exit codes."""
    try:
        return work()
    except ApiRefusedError as exc:
        _fail(EXIT_REFUSED, f"refused ({exc.status}): {exc.detail}")
    except UnavailableError as exc:
        _fail(EXIT_UNAVAILABLE, str(exc))


def _actor() -> str:
    return os.environ.get("SAFE_ROLLOUT_ACTOR") or getpass.getuser()


def _resolve(state: State, ref: str, endpoint: str | None) -> str:
    """A rollout id as given, or the rollout of MODEL:VERSION (found with the list's filters)."""
    if _ID.match(ref):
        return ref
    name, sep, version = ref.partition(":")
    if not sep or not name or not version:
        raise click.BadParameter(f"{ref!r} is neither a rollout id (r-...) nor MODEL:VERSION", param_hint="ID")
    found = _run(lambda: state.client.list(model=ref, endpoint=endpoint))
    if not found:
        _fail(EXIT_REFUSED, f"no rollout of {ref}" + (f" on {endpoint}" if endpoint else ""))
    if len({r["endpoint"] for r in found}) > 1:
        raise click.UsageError(
            f"{ref} has rollouts on several endpoints ({', '.join(sorted({r['endpoint'] for r in found}))}); "
            "give --endpoint"
        )
    return str(found[-1]["id"])


def _print_json(state: State, body: Any) -> None:
    click.echo(json.dumps(body, indent=2, default=str))


def _summary(view: dict[str, Any]) -> str:
    model = view.get("model") or {}
    traffic = view.get("traffic") or {}
    green = str(view.get("green") or "").lower()
    live = (traffic.get("live") or {}).get(green, 0)
    mirror = (traffic.get("mirror") or {}).get(green, 0)
    return (
        f"{view['id']}  {model.get('name')}:{model.get('version')} on {view.get('endpoint')}  "
        f"{view.get('phase')} ({view.get('stage')})  green live {live}% mirrored {mirror}%\n  {view.get('reason', '')}"
        + (f"\n  cost: {cost}" if (cost := (view.get("cost") or {}).get("summary")) else "")
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SAFE_ROLLOUT_URL", help="the Function App's base URL (SAFE_ROLLOUT_URL)")
@click.option("--key", envvar="SAFE_ROLLOUT_KEY", help="a function key (SAFE_ROLLOUT_KEY)")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def app(ctx: click.Context, url: str | None, key: str | None, output: str) -> None:
    """Safe Rollout: see, start and steer rollouts of model versions to Azure ML online endpoints."""
    obj = ctx.ensure_object(dict)
    injected: Transport | None = obj.get("transport")

    def make_transport() -> Transport:
        if injected is not None:
            return injected
        if not url:
            raise click.UsageError("give the API's base URL: set SAFE_ROLLOUT_URL or pass --url")
        if not url.startswith(("https://", "http://")):
            raise click.UsageError(f"--url must be an http(s) URL, got {url!r}")
        return http_transport(url, key)

    ctx.obj = State(make_transport, output, obj.get("console") or Console())


@app.command("list")
@click.option("--endpoint", help="only this endpoint's rollouts")
@click.option("--phase", type=click.Choice(PHASES), help="only rollouts in this phase")
@click.option("--model", help="only this model (NAME or NAME:VERSION)")
@click.pass_obj
def list_(state: State, endpoint: str | None, phase: str | None, model: str | None) -> None:
    """List rollouts."""
    found = _run(lambda: state.client.list(endpoint=endpoint, phase=phase, model=model))
    if state.output == "json":
        _print_json(state, {"rollouts": found, "count": len(found)})
        return
    table = Table(title=f"{len(found)} rollout(s)", title_justify="left")
    table.add_column("id", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for column in ("endpoint", "phase", "stage", "green live/mirror"):
        table.add_column(column)
    for r in found:
        green = str(r.get("green") or "").lower()
        traffic = r.get("traffic") or {}
        table.add_row(
            r["id"],
            f"{r['model']['name']}:{r['model']['version']}",
            r.get("endpoint", ""),
            r.get("phase", ""),
            r.get("stage", ""),
            f"{(traffic.get('live') or {}).get(green, 0)}% / {(traffic.get('mirror') or {}).get(green, 0)}%",
        )
    state.console.print(table)


@app.command("get")
@click.argument("ref", metavar="ID|MODEL:VERSION")
@click.option("--endpoint", help="with MODEL:VERSION: the endpoint, where a version has several rollouts")
@click.option("--watch", is_flag=True, help="redraw until the rollout ends (or Ctrl-C)")
@click.option("--interval", type=click.FloatRange(min=0), default=5.0, show_default=True, help="seconds between polls")
@click.option("--frames", type=click.IntRange(min=1), help="with --watch: stop after this many frames")
@click.pass_obj
def get(state: State, ref: str, endpoint: str | None, watch: bool, interval: float, frames: int | None) -> None:
    """Show a rollout: status, split, stage and its decisions."""
    rollout_id = _resolve(state, ref, endpoint)
    if not watch:
        view = _run(lambda: state.client.get(rollout_id))
        if state.output == "json":
            _print_json(state, view)
        else:
            state.console.print(frame(view, next_poll=0, frame_no=1))
        return
    if state.output == "json":
        raise click.UsageError("--watch draws a live view; use `get` without --watch for JSON")
    shown = 0
    try:
        with Live(console=state.console, auto_refresh=False) as live:
            while True:
                view = _run(lambda: state.client.get(rollout_id))
                shown += 1
                live.update(frame(view, next_poll=interval, frame_no=shown), refresh=True)
                if view.get("phase") in TERMINAL or (frames is not None and shown >= frames):
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _command(action: str) -> None:
    @app.command(action, help=f"{HELP[action]} Recorded in the audit trail with --actor and --reason.")
    @click.argument("ref", metavar="ID|MODEL:VERSION")
    @click.option("--reason", default="", help="why (recorded in the audit trail)")
    @click.option("--actor", default=None, help="who (default: SAFE_ROLLOUT_ACTOR or your user name)")
    @click.option("--endpoint", help="with MODEL:VERSION: the endpoint")
    @click.pass_obj
    def run(state: State, ref: str, reason: str, actor: str | None, endpoint: str | None) -> None:
        rollout_id = _resolve(state, ref, endpoint)
        view = _run(lambda: state.client.command(rollout_id, action, actor or _actor(), reason))
        if state.output == "json":
            _print_json(state, view)
        else:
            click.echo(f"{action}: {_summary(view)}")


for _action in ACTIONS:
    _command(_action)


@app.command("start")
@click.argument("endpoint")
@click.argument("model", metavar="MODEL[:VERSION]")
@click.option("--version", "version", help="the version, if MODEL does not carry it")
@click.option("--workspace", help="the workspace's ARM id (optional when the policy names one)")
@click.option("--reason", default="", help="why (recorded in the audit trail)")
@click.option("--actor", default=None, help="who (default: SAFE_ROLLOUT_ACTOR or your user name)")
@click.pass_obj
def start(
    state: State,
    endpoint: str,
    model: str,
    version: str | None,
    workspace: str | None,
    reason: str,
    actor: str | None,
) -> None:
    """Start a rollout of MODEL:VERSION (or azureml://registries/R/models/N/versions/V) on ENDPOINT."""
    if version:
        if ":" in model:
            raise click.UsageError("give the version once: MODEL:VERSION or MODEL --version VERSION")
        model = f"{model}:{version}"
    elif ":" not in model:
        raise click.UsageError(f"which version of {model}? give MODEL:VERSION or --version")
    body: dict[str, Any] = {"endpoint": endpoint, "model": model, "actor": actor or _actor(), "reason": reason}
    if workspace:
        body["workspace"] = workspace
    view = _run(lambda: state.client.start(body))
    if state.output == "json":
        _print_json(state, view)
        return
    outcome = (view.get("outcome") or {}).get("status", "started")
    click.echo(f"{outcome}: {_summary(view)}")


@app.command("report")
@click.argument("refs", nargs=-1, required=True, metavar="ID|MODEL:VERSION...")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=True, path_type=Path),
    help="the HTML file to write; with several rollouts, a directory (one ID.html each)",
)
@click.option("--endpoint", help="with MODEL:VERSION: the endpoint")
@click.pass_obj
def report(state: State, refs: tuple[str, ...], out: Path, endpoint: str | None) -> None:
    """Save the self-contained HTML report of rollouts (GET /api/rollouts/{id}/report): the split over
    time, blue vs green per minute, every decision with its evidence."""
    several = len(refs) > 1
    if several and not out.is_dir():
        raise click.UsageError(f"with {len(refs)} rollouts, -o must be an existing directory (one ID.html each)")
    if not several and out.is_dir():
        out = out / "report.html"
    if not out.parent.is_dir():
        raise click.UsageError(f"cannot write {out}: directory {out.parent} does not exist")
    ids = list(dict.fromkeys(_resolve(state, ref, endpoint) for ref in refs))
    for rollout_id in ids:
        try:
            page: str = _run(partial(state.client.report, rollout_id))
        except NoReportRouteError as exc:
            _fail(
                EXIT_USAGE,
                f"this API serves no report ({exc}); reports need a Safe Rollout API with "
                "GET /api/rollouts/{id}/report: check --url, or deploy the current app",
            )
        target = out / f"{rollout_id}.html" if several else out
        target.write_text(page, encoding="utf-8")
        click.echo(f"wrote {target} ({len(page.encode()):,} bytes): report of {rollout_id}")


def _repository_module(name: str) -> Any:
    """validate and dryrun run the app's own code (shared/, demo/): a checkout, not `pip install .`."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _fail(
            EXIT_USAGE,
            f"this command needs the Safe Rollout repository ({exc.name or name} not found): run it from a "
            "checkout, e.g. `PYTHONPATH=. .venv/bin/python -m cli.main ...`",
        )


@app.command("validate")
@click.argument("policy", type=click.Path(path_type=Path))
def validate(policy: Path) -> None:
    """Check a policy file as the app reads it: one line per problem, naming the file and the field.
    Exit 0 when valid, 2 when not."""
    targets = _repository_module("shared.targets")
    try:
        parsed = targets.load_policy_file(policy)
    except targets.PolicyFileError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:  # a directory, no permission: what the app would hit too
        _fail(EXIT_USAGE, f"{policy}: cannot read the policy file: {exc.strerror or exc}")
    count = len(parsed.targets)
    click.echo(f"{policy}: valid ({count} target{'s' if count != 1 else ''})")
    for target in parsed.targets:
        allowed = ", ".join(target.allowed_endpoints)
        where = target.endpoint or f"the endpoint its tag {target.endpoint_tag!r} names ({allowed})"
        line = f"  {target.model} -> {where}"
        if target.notify is not None:
            channels = ", ".join(f"{kind} via app setting {ch.url_setting}" for kind, ch in target.notify.channels())
            line += f"; notifies {channels} on {', '.join(target.notify.on)}"
        click.echo(line)


DRYRUN_OUTCOMES = (*PHASES, "none")


@app.command("dryrun")
@click.argument("policy", type=click.Path(path_type=Path))
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--expect",
    type=click.Choice(DRYRUN_OUTCOMES),
    help="exit 1 unless the rollout ends in this phase (none: no rollout starts)",
)
def dryrun(policy: Path, scenario: Path, expect: str | None) -> None:
    """Run a policy against a traffic scenario on a simulated clock (demo/dryrun.py): every decision
    with its time and split. Exit 0 as expected, 1 if it ended otherwise, 2 for a bad file."""
    module = _repository_module("demo.dryrun")
    argv = ["--policy", str(policy), "--scenario", str(scenario)]
    if expect:
        argv += ["--expect", expect]
    disabled = logging.root.manager.disable  # the dry run silences logging for its run only
    try:
        code = int(module.main(argv))
    finally:
        logging.disable(disabled)
    sys.exit(code)


def main() -> None:  # pragma: no cover - the console script
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
