"""`synapse memory list|search|add|edit|forget|history|restore|export|import|reembed`.

Wired into the main parser with `synapse.memory.cli.register(sub)`. `--agent NAME` names
the agent (id or name); `--shared` (or `--agent '*'`) the memories every agent shares.
Results go to stdout (`--json` where a program reads them), progress and notes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["register"]

T = TypeVar("T")


class _CliError(Exception):
    """A usage mistake: printed as one line, exit status 2."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "memory",
        help="an agent's long-term memories: list, search, add, edit, forget, export, re-embed",
        description="Long-term memories of agents. --agent names the agent; --shared the memories every "
        "agent shares.",
    )
    sub = p.add_subparsers(dest="memory_action", metavar="ACTION", required=True)

    def scoped(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--agent", "-a", help="the agent (id or name)")
        c.add_argument("--shared", action="store_true", help="the memories every agent shares (scope '*')")
        return c

    c = scoped("list", "list memories, most recently changed first")
    c.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    c.add_argument("--with-shared", action="store_true", help="include the shared memories")
    c.add_argument("--json", action="store_true", help="print a JSON list of memories with every field")
    c.set_defaults(func=run, memory_func=_list)

    c = scoped("search", "search memories by meaning and words (the agent's own and the shared ones)")
    c.add_argument("query", nargs="+", help="what to look for, in your own words")
    c.add_argument("-k", type=int, default=5, help="how many (default 5)")
    c.add_argument("--mode", choices=("hybrid", "vector", "keyword"), default="hybrid",
                   help="by meaning and words (default), by meaning only, or by words only")
    c.add_argument("--all", action="store_true", help="ignore the similarity threshold")
    c.add_argument("--json", action="store_true", help="print a JSON list with id, text, score")
    c.set_defaults(func=run, memory_func=_search)

    c = scoped("add", "add memories: each argument is one, or --file with one per line")
    c.add_argument("text", nargs="*", help="one memory per argument")
    c.add_argument("--file", "-f", help="a text file with one memory per line (`-`: standard input)")
    c.set_defaults(func=run, memory_func=_add)

    c = scoped("edit", "replace a memory's text (the old text stays in its history)")
    c.add_argument("id", type=int, help="the memory's id (see `synapse memory list`)")
    c.add_argument("text", nargs="+", help="its new text")
    c.set_defaults(func=run, memory_func=_edit)

    c = scoped("forget", "delete memories for good (text and history), or --all of the agent's")
    c.add_argument("ids", nargs="*", type=int, help="ids of the memories to forget")
    c.add_argument("--all", action="store_true", help="forget everything the agent remembers")
    c.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    c.set_defaults(func=run, memory_func=_forget)

    c = scoped("history", "changes to the agent's memories (or one memory), newest first")
    c.add_argument("--id", type=int, help="only this memory")
    c.add_argument("--limit", type=int, default=50, help="at most this many changes (default 50)")
    c.add_argument("--json", action="store_true", help="print a JSON list of changes")
    c.set_defaults(func=run, memory_func=_history)

    c = sub.add_parser("restore", help="bring back the text a change replaced or deleted")
    c.add_argument("history_id", type=int, help="the id `synapse memory history` shows")
    c.set_defaults(func=run, memory_func=_restore)

    c = scoped("export", "the agent's memories as JSON")
    c.add_argument("--output", "-o", help="write to this file instead of standard output")
    c.set_defaults(func=run, memory_func=_export)

    c = scoped("import", "add memories from an export (JSON) or a text file (one per line)")
    c.add_argument("file", help="the file (`-`: standard input)")
    c.set_defaults(func=run, memory_func=_import)

    c = sub.add_parser("reembed", help="embed memories with the current embedding_model (resumable)")
    c.add_argument("--agent", "-a", help="only this agent's memories (default: all)")
    c.add_argument("--shared", action="store_true", help="only the shared memories")
    c.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    c.set_defaults(func=run, memory_func=_reembed)
    return p


# --- helpers ------------------------------------------------------------------------------------


def _store() -> Any:
    from .store import MemoryStore

    return MemoryStore()


def _scope(args: argparse.Namespace, store: Any) -> str:
    scope = _maybe_scope(args, store)
    if scope is None:
        raise _CliError("name the agent with --agent NAME (or --shared for the memories every agent shares)")
    return scope


def _maybe_scope(args: argparse.Namespace, store: Any) -> str | None:
    from .store import resolve_agent

    if args.shared:
        return "*"
    return resolve_agent(args.agent, store.settings) if args.agent else None


def _run(make: Callable[[], Awaitable[T]]) -> T:
    import asyncio

    async def main() -> T:
        from ..providers.transport import close_session

        try:
            return await make()
        finally:
            await close_session()

    return asyncio.run(main())


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "never"


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _line(memory: Any) -> str:
    origin = memory.source + (f", {memory.session_id}" if memory.session_id else "")
    shared = "  [shared]" if memory.agent == "*" else ""
    return f"{memory.id:>6}  {memory.text}{shared}   ({origin}, {_when(memory.updated_at)})"


def _read_lines(source: str) -> list[str]:
    text = sys.stdin.read() if source == "-" else _read_file(source)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _read_file(name: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _CliError(f"no file {name!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _CliError(f"cannot read {name!r}: {exc}") from None


# --- commands --------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    store = _store()
    scope = _scope(args, store)
    memories = store.memories(scope, include_shared=args.with_shared, limit=args.limit)
    if args.json:
        _print_json([m.as_dict() for m in memories])
        return 0
    if not memories:
        print(f"no memories for {'the shared scope' if scope == '*' else repr(args.agent)}", file=sys.stderr)
    for m in memories:
        print(_line(m))
    return 0


def _search(args: argparse.Namespace) -> int:
    from .recall import search

    store = _store()
    scope = _scope(args, store)
    query = " ".join(args.query)
    hits = _run(lambda: search(store, scope, query, k=args.k, mode=args.mode,
                               threshold=None if args.all else "auto"))
    if args.json:
        _print_json([h.as_dict() for h in hits])
        return 0
    if not hits:
        print("nothing found (--all ignores the similarity threshold)", file=sys.stderr)
    for h in hits:
        print(f"{h.memory.id:>6}  {h.score:.4f}  {h.memory.text}")
    return 0


def _add(args: argparse.Namespace) -> int:
    store = _store()
    scope = _scope(args, store)
    texts = list(args.text) + (_read_lines(args.file) if args.file else [])
    if not texts:
        raise _CliError("nothing to add: give the memory as an argument, or --file with one per line")
    stored = _run(lambda: store.insert(scope, texts))
    for memory, new in stored:
        print(f"{'added' if new else 'already there'}  {memory.id}  {memory.text}")
    if any(not m.embedded_with for m, _ in stored):
        print("note: stored without an embedding (the embedding model failed); keyword search finds them, "
              "`synapse memory reembed` adds the vectors", file=sys.stderr)
    return 0


def _edit(args: argparse.Namespace) -> int:
    store = _store()
    scope = _scope(args, store)
    memory = _run(lambda: store.update(args.id, " ".join(args.text), agent=scope))
    print(f"updated  {memory.id}  {memory.text}")
    return 0


def _forget(args: argparse.Namespace) -> int:
    store = _store()
    scope = _scope(args, store)
    if args.all:
        if args.ids:
            raise _CliError("give memory ids or --all, not both")
        n = store.count(scope)
        if not args.yes:
            if not sys.stdin.isatty():
                raise _CliError(f"this forgets all {n} memories of {scope!r} for good: add --yes to confirm")
            answer = input(f"Forget all {n} memories of {scope!r} for good? Type 'forget' to confirm: ")
            if answer.strip().lower() != "forget":
                print("nothing forgotten", file=sys.stderr)
                return 1
        print(f"forgot {store.forget_all(scope)} memories")
        return 0
    if not args.ids:
        raise _CliError("name the memories to forget by id (see `synapse memory list`), or --all")
    for memory_id in args.ids:
        gone = _run(lambda: store.delete(memory_id, hard=True, agent=scope))
        print(f"forgot  {gone.id}  {gone.text}")
    return 0


def _history(args: argparse.Namespace) -> int:
    store = _store()
    scope = _maybe_scope(args, store) if args.id is not None else _scope(args, store)
    entries = store.history(memory_id=args.id, agent=scope, limit=args.limit)
    if args.json:
        _print_json([e.as_dict() for e in entries])
        return 0
    for e in entries:
        change = {"add": f"+ {e.new_text}", "delete": f"- {e.old_text}", "restore": f"+ {e.new_text}"}.get(
            e.op, f"{e.old_text}  ->  {e.new_text}")
        print(f"{e.id:>6}  {_when(e.created_at)}  memory {e.memory_id}  {e.op:<7} by {e.actor:<8} {change}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    store = _store()
    memory = _run(lambda: store.restore(args.history_id))
    print(f"restored  {memory.id}  {memory.text}")
    return 0


def _export(args: argparse.Namespace) -> int:
    store = _store()
    scope = _scope(args, store)
    data = {"agent": scope, "memories": store.export(scope)}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"exported {len(data['memories'])} memories to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _import(args: argparse.Namespace) -> int:
    store = _store()
    scope = _scope(args, store)
    raw = sys.stdin.read() if args.file == "-" else _read_file(args.file)
    items: Any
    if raw.lstrip().startswith(("[", "{")):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _CliError(f"{args.file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(items, dict):
            items = items.get("memories")
        if not isinstance(items, list):
            raise _CliError(f"{args.file}: expected a list of memories or an export with a \"memories\" list")
    else:
        items = [line.strip() for line in raw.splitlines() if line.strip()]
    added, present = _run(lambda: store.import_(scope, items))
    print(f"imported {added} memories ({present} already there)")
    return 0


def _reembed(args: argparse.Namespace) -> int:
    from .reembed import Progress, reembed

    store = _store()
    scope = _maybe_scope(args, store)
    last: list[Progress] = []

    def show(p: Progress) -> None:
        last[:] = [p]
        width = 30
        filled = int(width * p.fraction)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} memories in {p.model}")
        sys.stderr.flush()

    try:
        done = _run(lambda: reembed(store, scope, batch=max(1, args.batch), on_progress=show))
    except KeyboardInterrupt:
        where = f" at {last[0].done}/{last[0].total}" if last else ""
        print(f"\ninterrupted{where}: nothing is lost; run `synapse memory reembed` again to continue", file=sys.stderr)
        return 130
    except Exception:
        sys.stderr.write("\n")
        raise
    sys.stderr.write("\n")
    pruned = f", {done.pruned} old vectors removed" if done.pruned else ""
    print(f"{done.done}/{done.total} memories embedded with {done.model}{pruned}")
    return 0 if done.finished else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m synapse.memory.cli ...`, and the errors the main command would print."""
    parser = argparse.ArgumentParser(prog="synapse")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; a usage mistake exits 2, a refused request 1, one line each."""
    from ..errors import SynapseError

    try:
        return int(args.memory_func(args) or 0)
    except _CliError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    except SynapseError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
