"""HTTP API for people: list and inspect rollouts, and override them.

GET  /api/rollouts?endpoint=&phase=     list
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
    found = get_service().store.find(phase=phase)
    items = [rollout_view(s) for s in found if endpoint is None or s.rollout.endpoint.name == endpoint]
    return json_response({"rollouts": items, "count": len(items)})


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
    return json_response(rollout_view(stored, service.store.decisions(rollout_id)))


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
