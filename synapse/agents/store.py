"""The agents table: create, read, update, delete, import and export agents.

Names are unique case-insensitively (`name_key`). A fresh data folder gets one agent,
"Assistant", on the default model (`ensure_default`). Lookups take an id or a name:
exact id first, then the name, ignoring case. Everything goes through SQLAlchemy Core,
so the same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .spec import DEFAULT_AGENT_NAME, DEFAULT_SYSTEM_PROMPT, DEFAULT_TOOLS, AgentError, AgentSpec

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["AgentStore", "AgentNotFound"]


class AgentNotFound(AgentError):
    """No agent has that id or name; the message lists the known agents."""

    kind = "agent_not_found"


class AgentStore:
    """Agents in the database of `settings` (default: the current settings)."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self._seeded = False

    @property
    def engine(self) -> "sa.Engine":
        from .. import storage

        return storage.engine(settings=self.settings)

    # --- reading ------------------------------------------------------------------------

    def list(self) -> list[AgentSpec]:
        import sqlalchemy as sa

        from ..storage.tables import agents as t

        self.ensure_default()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.name_key)).mappings().all()
        return [_spec(r) for r in rows]

    def find(self, ref: str) -> AgentSpec | None:
        """Exact id first, then the name ignoring case."""
        import sqlalchemy as sa

        from ..storage.tables import agents as t

        self.ensure_default()
        ref = (ref or "").strip()
        if not ref:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == ref)).mappings().first()
            if row is None:
                row = conn.execute(sa.select(t).where(t.c.name_key == _key(ref))).mappings().first()
        return _spec(row) if row is not None else None

    def get(self, ref: str) -> AgentSpec:
        spec = self.find(ref)
        if spec is None:
            known = ", ".join(a.name for a in self.list()) or "none"
            raise AgentNotFound(f"no agent {ref!r}; known agents: {known}")
        return spec

    def default(self) -> AgentSpec:
        """The agent used when none is named: "Assistant", else the first one."""
        spec = self.find(DEFAULT_AGENT_NAME)
        if spec is not None:
            return spec
        agents = self.list()
        if agents:
            return agents[0]
        return self.create({"name": DEFAULT_AGENT_NAME, "system_prompt": DEFAULT_SYSTEM_PROMPT, "tools": list(DEFAULT_TOOLS)})

    # --- writing ------------------------------------------------------------------------

    def create(self, data: Mapping[str, Any] | AgentSpec) -> AgentSpec:
        spec = data if isinstance(data, AgentSpec) else AgentSpec.from_dict(data)
        spec.created_at = spec.updated_at = time.time()
        self._insert(spec)
        return spec

    def update(self, ref: str, changes: Mapping[str, Any]) -> AgentSpec:
        import sqlalchemy as sa

        from ..storage.tables import agents as t

        old = self.get(ref)
        spec = AgentSpec.from_dict(changes, partial_of=old)
        spec.updated_at = time.time()
        self._check_name(spec)
        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.id == old.id).values(**_row(spec)))
        return spec

    def delete(self, ref: str) -> AgentSpec:
        import sqlalchemy as sa

        from ..storage.tables import agents as t

        spec = self.get(ref)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t).where(t.c.id == spec.id))
        return spec

    def duplicate(self, ref: str, name: str | None = None) -> AgentSpec:
        spec = self.get(ref)
        data = spec.export()
        data["name"] = name or self._free_name(f"{spec.name} (copy)")
        return self.create(data)

    def export(self, ref: str | None = None) -> dict[str, Any]:
        """One agent, or all of them, as portable JSON (no ids or times)."""
        agents = [self.get(ref)] if ref else self.list()
        return {"synapse_agents": 1, "agents": [a.export() for a in agents]}

    def import_(self, data: Any, *, replace: bool = False) -> builtins.list[AgentSpec]:
        """Agents from `export()` JSON (or one agent object, or a list).

        A name that exists is an error unless `replace`, which updates that agent.
        Everything is validated before anything is written.
        """
        items = data.get("agents") if isinstance(data, Mapping) and "agents" in data else data
        if isinstance(items, Mapping):
            items = [items]
        if not isinstance(items, list) or not items:
            raise AgentError("nothing to import: give an agent object, a list, or the JSON `synapse agents export` writes")
        specs = []
        for i, item in enumerate(items):
            try:
                clean = {k: v for k, v in item.items() if k not in ("id", "created_at", "updated_at")} if isinstance(item, Mapping) else item
                specs.append(AgentSpec.from_dict(clean))
            except AgentError as exc:
                raise AgentError(f"agent #{i + 1}: {exc}", exc.field) from None
        names = [s.name.lower() for s in specs]
        if len(set(names)) != len(names):
            raise AgentError("the import names the same agent twice")
        if not replace:
            for spec in specs:
                if self.find(spec.name) is not None:
                    raise AgentError(f"an agent named {spec.name!r} exists already: rename it, or import with replace", "name")
        out = []
        for spec in specs:
            existing = self.find(spec.name)
            out.append(self.update(existing.id, spec.export()) if existing else self.create(spec))
        return out

    def ensure_default(self) -> None:
        """A fresh database gets the "Assistant" agent (once per store)."""
        if self._seeded:
            return
        import sqlalchemy as sa

        from ..storage.tables import agents as t

        self._seeded = True
        with self.engine.begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(t)).scalar():
                return
            spec = AgentSpec(DEFAULT_AGENT_NAME, DEFAULT_SYSTEM_PROMPT, "A general assistant on the default model.",
                             tools=list(DEFAULT_TOOLS))
            try:
                conn.execute(sa.insert(t).values(**_row(spec)))
            except sa.exc.IntegrityError:
                pass  # another process seeded it first

    # --- internals ----------------------------------------------------------------------

    def _insert(self, spec: AgentSpec) -> None:
        import sqlalchemy as sa

        from ..storage.tables import agents as t

        self.ensure_default()
        self._check_name(spec)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(t).values(**_row(spec)))
        except sa.exc.IntegrityError:
            raise AgentError(f"an agent named {spec.name!r} exists already: pick another name", "name") from None

    def _check_name(self, spec: AgentSpec) -> None:
        other = self.find(spec.name)
        if other is not None and other.id != spec.id:
            raise AgentError(f"an agent named {other.name!r} exists already: pick another name", "name")

    def _free_name(self, base: str) -> str:
        name, n = base, 2
        while self.find(name) is not None:
            name, n = f"{base} {n}", n + 1
        return name


def _key(name: str) -> str:
    return " ".join(name.split()).lower()


def _row(spec: AgentSpec) -> dict[str, Any]:
    return {
        "id": spec.id, "name": spec.name, "name_key": _key(spec.name), "description": spec.description,
        "system_prompt": spec.system_prompt, "model": spec.model, "max_turns": spec.max_turns, "tools": list(spec.tools),
        "temperature": spec.temperature, "response_cache": spec.response_cache,
        "max_total_cost_usd": spec.max_total_cost_usd, "memory": spec.memory, "memory_tool": spec.memory_tool,
        "extra": dict(spec.extra),
        "created_at": spec.created_at, "updated_at": spec.updated_at,
    }


def _spec(row: Any) -> AgentSpec:
    return AgentSpec(
        name=row["name"], system_prompt=row["system_prompt"], description=row["description"], model=row["model"],
        max_turns=row["max_turns"], tools=list(row["tools"] or []), temperature=row["temperature"],
        response_cache=row["response_cache"], max_total_cost_usd=row["max_total_cost_usd"], memory=bool(row["memory"]),
        memory_tool=bool(row["memory_tool"]), extra=dict(row["extra"] or {}), id=row["id"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )
