"""The rollout store: rows, keys and transactions over a minimal row backend.

One partition per endpoint. Rows:
  rollout|{id}              status (JSON), policy snapshot (JSON), query columns; ETag-guarded
  active                    the lock: names the endpoint's current rollout
  decision|{id}|{seq:010d}  append-only audit trail
  marker|{sha256}           idempotency markers (alert id + condition, event ids)
Every change to one endpoint is a single all-or-nothing transaction in its partition, so a status
update never lands without its decision row, and a lock is never held by a rollout that is not there.

The same class runs over Azure Table storage (shared/adapters/table_store.py) and over memory
(MemoryRows below), so service tests and production share one set of semantics; the contract
tests run against both and against Azurite.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote

from shared.ports import AlreadyExistsError, ConflictError, DecisionRecord, StoredRollout
from shared.rollout.model import EndpointRef, Rollout, RolloutPhase
from shared.rollout.policy import RolloutPolicy

# Azure Table limits: a string property holds at most 64 KiB (32K UTF-16 chars); stay well below.
MAX_STRING_CHARS = 30_000
LOCK_ROW = "active"

Entity = dict[str, Any]


@dataclass(frozen=True)
class Op:
    kind: Literal["create", "update", "delete"]
    row_key: str
    entity: Entity = field(default_factory=dict)
    etag: str | None = None  # update/delete: only if unchanged; None: unconditional


class RowBackend(Protocol):
    """What the store needs of a table: point reads, equality queries, one-partition transactions."""

    def get(self, partition: str, row: str) -> tuple[Entity, str] | None: ...

    def query(self, equals: dict[str, Any], partition: str | None = None) -> list[tuple[Entity, str]]:
        """Rows whose properties equal `equals` (PartitionKey/RowKey allowed), with their ETags."""
        ...

    def transact(self, partition: str, ops: Sequence[Op]) -> dict[str, str]:
        """All or nothing; returns the new ETags by row key. ConflictError (or AlreadyExistsError
        for a create on an existing row) when any precondition fails."""
        ...


def partition_key(endpoint: EndpointRef) -> str:
    """ARM ids hold `/`, which Table keys forbid: percent-encode everything but [A-Za-z0-9_.~-]."""
    return quote(endpoint.key, safe="")


def marker_key(marker: str) -> str:
    return "marker|" + hashlib.sha256(marker.encode()).hexdigest()


def _bounded(text: str, what: str) -> str:
    if len(text) > MAX_STRING_CHARS:
        raise ValueError(f"{what} is {len(text)} characters; Table storage holds at most {MAX_STRING_CHARS}")
    return text


def _rollout_entity(rollout: Rollout, policy_json: str | None) -> Entity:
    entity: Entity = {
        "Kind": "rollout",
        "RolloutId": rollout.id,
        "Phase": str(rollout.phase),
        "Due": rollout.due,
        "Endpoint": rollout.endpoint.name,
        "Model": rollout.model.name,
        "ModelVersion": rollout.model.version,
        "UpdatedAt": rollout.updated_at.isoformat(),
        "Doc": _bounded(rollout.model_dump_json(), "rollout status"),
    }
    if policy_json is not None:
        entity["Policy"] = _bounded(policy_json, "policy snapshot")
    return entity


def _decision_op(rollout_id: str, record: DecisionRecord) -> Op:
    doc = record.model_dump_json()
    if len(doc) > MAX_STRING_CHARS:  # evidence is the only unbounded part: keep the verdicts, drop detail
        slim = record.model_copy(
            update={"evidence": tuple(e.model_copy(update={"evidence": {}}) for e in record.evidence)}
        )
        doc = _bounded(slim.model_dump_json(), "decision record")
    return Op(
        "create",
        f"decision|{rollout_id}|{record.seq:010d}",
        {"Kind": "decision", "RolloutId": rollout_id, "Doc": doc},
    )


def _load(entity: Entity, etag: str) -> StoredRollout:
    return StoredRollout(
        rollout=Rollout.model_validate_json(entity["Doc"]),
        policy=RolloutPolicy.model_validate_json(entity["Policy"]),
        etag=etag,
    )


class RolloutStoreImpl:
    """RolloutStore over any RowBackend."""

    def __init__(self, rows: RowBackend) -> None:
        self._rows = rows

    def create(
        self,
        rollout: Rollout,
        policy: RolloutPolicy,
        decision: DecisionRecord,
        *,
        replacing: tuple[StoredRollout, Rollout, DecisionRecord] | None = None,
    ) -> StoredRollout:
        pk = partition_key(rollout.endpoint)
        ops = [
            Op("create", f"rollout|{rollout.id}", _rollout_entity(rollout, policy.model_dump_json())),
            _decision_op(rollout.id, decision),
        ]
        lock = self._rows.get(pk, LOCK_ROW)
        lock_entity = {"Kind": "lock", "RolloutId": rollout.id}
        if lock is None:
            ops.append(Op("create", LOCK_ROW, lock_entity))
        elif replacing is not None and lock[0].get("RolloutId") == replacing[0].rollout.id:
            old, new_status, old_decision = replacing
            ops += [
                Op("update", LOCK_ROW, lock_entity, etag=lock[1]),
                Op("update", f"rollout|{old.rollout.id}", _rollout_entity(new_status, None), etag=old.etag),
                _decision_op(old.rollout.id, old_decision),
            ]
        else:
            raise AlreadyExistsError(
                f"endpoint {rollout.endpoint.name} already has an active rollout ({lock[0].get('RolloutId')})"
            )
        etags = self._rows.transact(pk, ops)
        return StoredRollout(rollout=rollout, policy=policy, etag=etags[f"rollout|{rollout.id}"])

    def save(
        self,
        stored: StoredRollout,
        rollout: Rollout,
        decision: DecisionRecord | None,
        *,
        markers: Sequence[str] = (),
    ) -> StoredRollout:
        if rollout.id != stored.rollout.id:
            raise ValueError("save() must keep the rollout id")
        pk = partition_key(rollout.endpoint)
        row = f"rollout|{rollout.id}"
        ops = [Op("update", row, _rollout_entity(rollout, None), etag=stored.etag)]
        if decision is not None:
            ops.append(_decision_op(rollout.id, decision))
        ops += [Op("create", marker_key(m), {"Kind": "marker", "RolloutId": rollout.id}) for m in markers]
        if rollout.phase.terminal:
            lock = self._rows.get(pk, LOCK_ROW)
            if lock is not None and lock[0].get("RolloutId") == rollout.id:
                ops.append(Op("delete", LOCK_ROW, etag=lock[1]))
        etags = self._rows.transact(pk, ops)
        return StoredRollout(rollout=rollout, policy=stored.policy, etag=etags[row])

    def get(self, rollout_id: str) -> StoredRollout | None:
        found = self._rows.query({"RowKey": f"rollout|{rollout_id}"})
        return _load(*found[0]) if found else None

    def active_for(self, endpoint: EndpointRef) -> StoredRollout | None:
        pk = partition_key(endpoint)
        lock = self._rows.get(pk, LOCK_ROW)
        if lock is None:
            return None
        row = self._rows.get(pk, f"rollout|{lock[0]['RolloutId']}")
        return _load(*row) if row else None

    def find(
        self,
        *,
        endpoint: EndpointRef | None = None,
        phase: RolloutPhase | None = None,
        due_only: bool = False,
    ) -> list[StoredRollout]:
        equals: dict[str, Any] = {"Kind": "rollout"}
        if phase is not None:
            equals["Phase"] = str(phase)
        if due_only:
            equals["Due"] = True
        pk = partition_key(endpoint) if endpoint else None
        found = [_load(e, t) for e, t in self._rows.query(equals, partition=pk)]
        return sorted(found, key=lambda s: s.rollout.created_at)

    def decisions(self, rollout_id: str) -> list[DecisionRecord]:
        found = self._rows.query({"RowKey": f"rollout|{rollout_id}"})
        if not found:
            return []
        pk = found[0][0]["PartitionKey"]
        rows = self._rows.query({"Kind": "decision", "RolloutId": rollout_id}, partition=pk)
        records = [DecisionRecord.model_validate_json(e["Doc"]) for e, _ in rows]
        return sorted(records, key=lambda r: r.seq)

    def has_marker(self, endpoint: EndpointRef, marker: str) -> bool:
        return self._rows.get(partition_key(endpoint), marker_key(marker)) is not None


class MemoryRows:
    """An in-memory RowBackend with Table storage's semantics (ETags, atomic partition batches)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[Entity, str]] = {}
        self._lock = threading.Lock()
        self._version = 0

    def get(self, partition: str, row: str) -> tuple[Entity, str] | None:
        with self._lock:
            found = self._rows.get((partition, row))
            return (json.loads(json.dumps(found[0])), found[1]) if found else None

    def query(self, equals: dict[str, Any], partition: str | None = None) -> list[tuple[Entity, str]]:
        with self._lock:
            out = []
            for (pk, _), (entity, etag) in self._rows.items():
                if partition is not None and pk != partition:
                    continue
                if all(entity.get(k) == v for k, v in equals.items()):
                    out.append((json.loads(json.dumps(entity)), etag))
            return out

    def transact(self, partition: str, ops: Sequence[Op]) -> dict[str, str]:
        if len(ops) > 100:
            raise ValueError("a Table transaction holds at most 100 operations")
        with self._lock:
            for op in ops:
                current = self._rows.get((partition, op.row_key))
                if op.kind == "create" and current is not None:
                    raise AlreadyExistsError(f"row {op.row_key} already exists")
                if op.kind in ("update", "delete"):
                    if current is None:
                        raise ConflictError(f"row {op.row_key} does not exist")
                    if op.etag is not None and current[1] != op.etag:
                        raise ConflictError(f"row {op.row_key} was changed by someone else")
            etags: dict[str, str] = {}
            for op in ops:
                key = (partition, op.row_key)
                if op.kind == "delete":
                    del self._rows[key]
                    continue
                self._version += 1
                etag = f'W/"{self._version}"'
                entity = dict(self._rows[key][0]) if op.kind == "update" else {}
                entity |= op.entity | {"PartitionKey": partition, "RowKey": op.row_key}
                self._rows[key] = (json.loads(json.dumps(entity)), etag)
                etags[op.row_key] = etag
            return etags


def memory_store() -> RolloutStoreImpl:
    return RolloutStoreImpl(MemoryRows())
