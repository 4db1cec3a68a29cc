"""The rollout store: rows, keys and transactions over a minimal row backend.

One partition per endpoint. Rows:
  rollout|{id}              status (JSON), policy snapshot (JSON), query columns; ETag-guarded
  active                    the lock: names the endpoint's current rollout
  decision|{id}|{seq:010d}  append-only audit trail
  marker|{sha256}           idempotency markers (alert id + condition, event ids)
and, in the partition `index`, one row per rollout id naming its endpoint's partition, so reading a
rollout by id is two point reads, never a scan of the table.
Every change to one endpoint is a single all-or-nothing transaction in its partition, so a status
update never lands without its decision row, and a lock is never held by a rollout that is not there.

The same class runs over Azure Table storage (shared/adapters/table_store.py) and over memory
(MemoryRows below), so service tests and production share one set of semantics; the contract
tests run against both and against Azurite.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote

from shared.ports import AlreadyExistsError, ConflictError, DecisionRecord, EndpointBusyError, StoredRollout
from shared.rollout.model import EndpointRef, Rollout, RolloutPhase
from shared.rollout.policy import RolloutPolicy

# Azure Table limits: a string property holds at most 64 KiB (32K UTF-16 chars); stay well below.
MAX_STRING_CHARS = 30_000
LOCK_ROW = "active"
INDEX_PARTITION = "index"  # endpoint partitions are percent-encoded ARM ids: never this
log = logging.getLogger("safe_rollout")

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
    """A stored rollout. A policy snapshot that no longer parses isolates that rollout (it is
    returned with `policy_error` and the default policy) rather than failing every reader."""
    rollout = Rollout.model_validate_json(entity["Doc"])
    try:
        policy = RolloutPolicy.model_validate_json(entity["Policy"])
    except (ValueError, OverflowError) as exc:
        first = str(exc).splitlines()
        detail = " ".join(first[:3])[:400]
        log.error("rollout %s: its stored policy snapshot cannot be read: %s", rollout.id, detail)
        return StoredRollout(rollout=rollout, policy=RolloutPolicy(), etag=etag, policy_error=detail)
    return StoredRollout(rollout=rollout, policy=policy, etag=etag)


def _load_all(rows: list[tuple[Entity, str]]) -> list[StoredRollout]:
    """Every readable rollout; one that cannot be read at all is logged and left out, never
    allowed to stop the tick or the API for the others."""
    out = []
    for entity, etag in rows:
        try:
            out.append(_load(entity, etag))
        except (ValueError, KeyError, OverflowError) as exc:
            log.error("rollout row %s cannot be read and is skipped: %s", entity.get("RowKey"), str(exc)[:300])
    return out


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
        if replacing is not None:
            # Superseding is only valid against the lock holder we read: if it ended or another
            # took the lock meanwhile, the caller must look again (never create beside it).
            old, new_status, old_decision = replacing
            if lock is None or lock[0].get("RolloutId") != old.rollout.id:
                holder = "nobody" if lock is None else lock[0].get("RolloutId")
                raise ConflictError(
                    f"rollout {old.rollout.id} no longer holds endpoint {rollout.endpoint.name} ({holder} does)"
                )
            ops += [
                Op("update", LOCK_ROW, lock_entity, etag=lock[1]),
                Op("update", f"rollout|{old.rollout.id}", _rollout_entity(new_status, None), etag=old.etag),
                _decision_op(old.rollout.id, old_decision),
            ]
        elif lock is None:
            ops.append(Op("create", LOCK_ROW, lock_entity))
        else:
            raise EndpointBusyError(
                f"endpoint {rollout.endpoint.name} already has an active rollout ({lock[0].get('RolloutId')})"
            )
        self._index(rollout.id, pk)
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
        elif stored.rollout.phase.terminal:
            # Reopened (a rollback just after success): it must hold the endpoint again.
            lock = self._rows.get(pk, LOCK_ROW)
            if lock is not None and lock[0].get("RolloutId") != rollout.id:
                raise EndpointBusyError(
                    f"endpoint {rollout.endpoint.name} is held by rollout {lock[0].get('RolloutId')} now"
                )
            if lock is None:
                ops.append(Op("create", LOCK_ROW, {"Kind": "lock", "RolloutId": rollout.id}))
        etags = self._rows.transact(pk, ops)
        return StoredRollout(rollout=rollout, policy=stored.policy, etag=etags[row])

    def _index(self, rollout_id: str, partition: str) -> None:
        # An earlier attempt may have written it: it names the same partition (the id derives from it).
        with contextlib.suppress(AlreadyExistsError):
            self._rows.transact(INDEX_PARTITION, [Op("create", rollout_id, {"Kind": "index", "Partition": partition})])

    def _row(self, rollout_id: str) -> tuple[Entity, str] | None:
        """The rollout's row by two point reads; a scan only for rows written before the index."""
        index = self._rows.get(INDEX_PARTITION, rollout_id)
        if index is not None:
            return self._rows.get(str(index[0]["Partition"]), f"rollout|{rollout_id}")
        found = self._rows.query({"RowKey": f"rollout|{rollout_id}"})
        return found[0] if found else None

    def get(self, rollout_id: str) -> StoredRollout | None:
        row = self._row(rollout_id)
        return _load(*row) if row else None

    def active_for(self, endpoint: EndpointRef) -> StoredRollout | None:
        pk = partition_key(endpoint)
        lock = self._rows.get(pk, LOCK_ROW)
        if lock is None:
            return None
        row = self._rows.get(pk, f"rollout|{lock[0]['RolloutId']}")
        return _load(*row) if row else None  # a row that cannot be read at all raises: the caller retries

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
        found = _load_all(self._rows.query(equals, partition=pk))
        return sorted(found, key=lambda s: s.rollout.created_at)

    def decisions(self, rollout_id: str) -> list[DecisionRecord]:
        found = self._row(rollout_id)
        if not found:
            return []
        pk = found[0]["PartitionKey"]
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
