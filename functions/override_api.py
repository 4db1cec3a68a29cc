"""HTTP API for people: list and inspect rollouts, and override them.

GET  /api/rollouts?endpoint=&phase=&model=  list (model: a name, or name:version)
POST /api/rollouts                      start one by hand: {"endpoint", "model", "workspace"?, "actor", "reason"?}
GET  /api/rollouts/{id}                 status, split, decision history with evidence
GET  /api/rollouts/{id}/report          the same as a self-contained HTML report with charts
POST /api/rollouts/{id}/{action}        pause | resume | approve | promote | promote-full | rollback | abort | retry
                                        body {"actor": "...", "reason": "..."} (recorded in the audit trail)
GET  /api/openapi.json                  this API's OpenAPI document
Errors are application/problem+json: 404 unknown, 409 not allowed now or lost a race, 422 bad body,
503 with Retry-After when Azure or the state store cannot be reached (try again).
"""

import json
import logging
import re
from pathlib import Path

import azure.functions as func

from functions.http import NOSNIFF, answer, json_response, problem

bp = func.Blueprint()
log = logging.getLogger("safe_rollout.functions")
_ID = re.compile(r"^r-[0-9a-f]{20}$")
OPENAPI = Path(__file__).resolve().parents[1] / "shared" / "openapi.json"


@bp.function_name("list_rollouts")
@bp.route(route="rollouts", methods=["GET"])
def list_rollouts(req: func.HttpRequest) -> func.HttpResponse:
    return answer("list rollouts", lambda: _list_rollouts(req))


def _list_rollouts(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service
    from shared.rollout.model import RolloutPhase
    from shared.views import rollout_view

    phase_text = req.params.get("phase")
    phase = None
    if phase_text:
        try:
            phase = RolloutPhase(phase_text)
        except ValueError:
            return problem(
                422,
                "Bad query",
                f"unknown phase {phase_text[:40]!r}; one of " + ", ".join(p.value for p in RolloutPhase),
            )
    endpoint = req.params.get("endpoint")
    if endpoint is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,31}", endpoint):
        return problem(422, "Bad query", "endpoint must be an online endpoint name")
    model = req.params.get("model")
    if model is not None and not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?", model
    ):
        return problem(422, "Bad query", "model must be a model name, or name:version")
    name, _, version = (model or "").partition(":")
    found = get_service().store.find(phase=phase)
    items = [
        rollout_view(s)
        for s in found
        if (endpoint is None or s.rollout.endpoint.name == endpoint)
        and (model is None or s.rollout.model.name.lower() == name.lower())
        and (not version or s.rollout.model.version == version)
    ]
    return json_response({"rollouts": items, "count": len(items)})


@bp.function_name("start_rollout")
@bp.route(route="rollouts", methods=["POST"])
def start_rollout(req: func.HttpRequest) -> func.HttpResponse:
    return answer("start rollout", lambda: _start_rollout(req))


def _start_rollout(req: func.HttpRequest) -> func.HttpResponse:
    """The ModelRegistered path, started by a person: 201 with the new rollout, 200 with the one
    this version already has; 409 when it may not start (not newer, endpoint busy, endpoint not in a
    state to start from) or the workspace must be given; 404 when no target in the policy file
    sends the model to that endpoint, or Azure has no such endpoint; 422 for a malformed body."""
    from shared.bootstrap import get_service
    from shared.payloads import PayloadError, parse_start
    from shared.service import EndpointNotFoundError, StartRefusedError, WorkspaceNeededError
    from shared.views import rollout_view

    try:
        body, model, workspace = parse_start(req.get_body())
    except PayloadError as exc:
        return problem(
            422,
            "Bad body",
            f'{exc} (expected {{"endpoint": "...", "model": "name:version", "workspace": "...", "actor": "..."}})',
        )
    service = get_service()
    try:
        outcome = service.start_by_hand(
            endpoint=body.endpoint, model=model, workspace=workspace, actor=body.actor, reason=body.reason
        )
    except WorkspaceNeededError as exc:
        return problem(409, "Workspace needed", str(exc))
    except StartRefusedError as exc:
        return problem(404, "No target", str(exc))
    except EndpointNotFoundError as exc:
        log.info("manual start of %s: %s", model.label, exc)
        return problem(
            404,
            "Not found",
            f"endpoint {body.endpoint} was not found in the workspace (if it was just created, try again "
            "shortly; otherwise check the name and the policy file)",
        )
    log.info(
        "manual start of %s on %s by %s: %s: %s",
        model.label,
        body.endpoint,
        body.actor,
        outcome.status,
        outcome.message,
    )
    if outcome.status in ("ignored", "rejected") or outcome.rollout_id is None:
        return problem(409, "Not started", outcome.message)
    stored = service.get(outcome.rollout_id)
    view = rollout_view(stored)
    view["outcome"] = {"status": outcome.status, "message": outcome.message}
    return json_response(view, status=200 if outcome.status == "duplicate" else 201)


@bp.function_name("get_rollout")
@bp.route(route="rollouts/{rollout_id}", methods=["GET"])
def get_rollout(req: func.HttpRequest) -> func.HttpResponse:
    return answer("get rollout", lambda: _get_rollout(req))


def _get_rollout(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service
    from shared.service import NotFoundError
    from shared.views import rollout_view

    rollout_id = req.route_params.get("rollout_id", "")
    if not _ID.match(rollout_id):
        return problem(404, "Not found", "no such rollout")
    service = get_service()
    try:
        stored = service.get(rollout_id)
    except NotFoundError:
        return problem(404, "Not found", f"no rollout {rollout_id}")
    view = rollout_view(stored, service.store.decisions(rollout_id))
    view["now"] = service.clock.now().isoformat()  # the service's clock, for a client's elapsed times
    return json_response(view)


@bp.function_name("rollout_report")
@bp.route(route="rollouts/{rollout_id}/report", methods=["GET"])
def rollout_report(req: func.HttpRequest) -> func.HttpResponse:
    return answer("rollout report", lambda: _rollout_report(req))


def _rollout_report(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service
    from shared.report import CONTENT_SECURITY_POLICY
    from shared.service import NotFoundError

    rollout_id = req.route_params.get("rollout_id", "")
    if not _ID.match(rollout_id):
        return problem(404, "Not found", "no such rollout")
    try:
        page = get_service().report([rollout_id], title=f"Safe Rollout report: {rollout_id}")
    except NotFoundError:
        return problem(404, "Not found", f"no rollout {rollout_id}")
    # Inline SVG and one hashed <style>: no scripts, nothing loaded from anywhere, no framing.
    headers = {**NOSNIFF, "Content-Security-Policy": CONTENT_SECURITY_POLICY, "Referrer-Policy": "no-referrer"}
    return func.HttpResponse(page, status_code=200, mimetype="text/html", charset="utf-8", headers=headers)


@bp.function_name("override_rollout")
@bp.route(route="rollouts/{rollout_id}/{action}", methods=["POST"])
def override_rollout(req: func.HttpRequest) -> func.HttpResponse:
    return answer("override", lambda: _override_rollout(req))


def _override_rollout(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import get_service
    from shared.payloads import PayloadError, parse_override
    from shared.ports import ConflictError
    from shared.rollout.machine import CommandKind, CommandRejectedError
    from shared.service import NotFoundError
    from shared.views import rollout_view

    rollout_id = req.route_params.get("rollout_id", "")
    action = req.route_params.get("action", "")
    try:
        kind = CommandKind(action)
    except ValueError:
        return problem(
            404, "Not found", f"unknown action {action[:40]!r}; one of " + ", ".join(k.value for k in CommandKind)
        )
    if not _ID.match(rollout_id):
        return problem(404, "Not found", "no such rollout")
    try:
        body = parse_override(req.get_body())
    except PayloadError as exc:
        return problem(422, "Bad body", f'{exc} (expected {{"actor": "...", "reason": "..."}})')
    try:
        stored = get_service().command(rollout_id, kind, actor=body.actor, reason=body.reason)
    except NotFoundError:
        return problem(404, "Not found", f"no rollout {rollout_id}")
    except CommandRejectedError as exc:
        return problem(409, "Not allowed now", str(exc))
    except ConflictError as exc:
        return problem(409, "Conflict", str(exc))
    log.info("rollout %s: %s by %s (%s)", rollout_id, kind, body.actor, body.reason)
    return json_response(rollout_view(stored))


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(json.loads(OPENAPI.read_text()))
