"""`synapse agents list|show|create|edit|delete|export|import` and `synapse chat --agent`.

Wired into the main parser with `synapse.agents.cli.register(sub)`; `synapse chat`
hands over to `cmd_agent_chat` when `--agent` or `--session` is given. The reply goes
to stdout as it streams; tool calls, the session id and the cost line go to stderr, so
`synapse chat --agent X "..." > answer.md` keeps only the answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["cmd_agent_chat", "cmd_agents", "register"]


class CliError(Exception):
    """A usage problem: printed as one line, exit code 2."""


def _agent_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help='model name, or "(default)" for the `model` setting')
    g = p.add_mutually_exclusive_group()
    g.add_argument("--system", help="system prompt")
    g.add_argument("--system-file", help="read the system prompt from this file")
    p.add_argument("--description", help="what the agent is for (shown in the agent list)")
    p.add_argument("--tools", help='comma-separated tool names, "all", or "" for none')
    p.add_argument("--max-turns", type=int, help="tool rounds per turn (default 30)")
    p.add_argument("--temperature", help="0-2, or empty for the model's default")
    p.add_argument("--response-cache", choices=("off", "exact", "semantic"),
                   help="reuse replies to the same (exact) or a similar (semantic) request")
    p.add_argument("--max-cost", dest="max_total_cost_usd", help="USD per session, or empty for no limit")
    p.add_argument("--memory", choices=("on", "off"), help="long-term memory across sessions")
    p.add_argument("--memory-tool", choices=("on", "off"),
                   help="Anthropic's memory tool (a /memories folder of files) for Claude models")


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("agents", help="list, create and edit agents (the Agents page)",
                              description="Agents: a name, a system prompt, an optional model and tools.")
    sub = p.add_subparsers(dest="agents_action", metavar="ACTION", required=True)
    a = sub.add_parser("list", help="every agent")
    a.add_argument("--json", action="store_true", help="print a JSON list")
    a = sub.add_parser("show", help="one agent by id or name")
    a.add_argument("agent", help="agent id or name")
    a.add_argument("--json", action="store_true", help="print the agent as JSON")
    a = sub.add_parser("create", help="a new agent")
    a.add_argument("name", help="a unique name (case-insensitive)")
    _agent_flags(a)
    a = sub.add_parser("edit", help="change an agent's fields")
    a.add_argument("agent", help="agent id or name")
    a.add_argument("--name", dest="new_name", help="rename it")
    _agent_flags(a)
    a = sub.add_parser("delete", help="delete an agent (asks first on a terminal)")
    a.add_argument("agent", help="agent id or name")
    a.add_argument("-y", "--yes", action="store_true", help="do not ask")
    a = sub.add_parser("export", help="one agent, or all, as JSON")
    a.add_argument("agent", nargs="?", help="agent id or name (none: every agent)")
    a.add_argument("-o", "--output", help="write to this file instead of stdout")
    a = sub.add_parser("import", help="agents from the JSON `export` writes (a file, or - for stdin)")
    a.add_argument("file", help="a JSON file from `synapse agents export`, or - for standard input")
    a.add_argument("--replace", action="store_true", help="update agents that have the same name")
    p.set_defaults(func=cmd_agents)
    return p


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "new_name", None):
        out["name"] = args.new_name
    if args.model is not None:
        out["model"] = args.model
    if args.system is not None:
        out["system_prompt"] = args.system
    if args.system_file:
        try:
            with open(args.system_file, encoding="utf-8") as fh:
                out["system_prompt"] = fh.read()
        except OSError as exc:
            raise CliError(f"cannot read {args.system_file}: {exc.strerror}") from None
    if args.description is not None:
        out["description"] = args.description
    if args.tools is not None:
        out["tools"] = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.max_turns is not None:
        out["max_turns"] = args.max_turns
    if args.temperature is not None:
        out["temperature"] = args.temperature or None
    if args.response_cache is not None:
        out["response_cache"] = args.response_cache
    if args.max_total_cost_usd is not None:
        out["max_total_cost_usd"] = args.max_total_cost_usd or None
    if args.memory is not None:
        out["memory"] = args.memory
    if args.memory_tool is not None:
        out["memory_tool"] = args.memory_tool
    return out


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _show(spec: Any) -> None:
    d = spec.as_dict()
    print(f"{spec.name}  ({spec.id})")
    for key in ("description", "model", "tools", "max_turns", "temperature", "response_cache", "max_total_cost_usd", "memory",
                "memory_tool"):
        value = d[key]
        if key == "tools":
            value = ", ".join(value) or "(none)"
        print(f"  {key:<19} {value if value not in (None, '') else '—'}")
    print("  system prompt:")
    for line in (spec.system_prompt or "(empty)").splitlines() or [""]:
        print(f"    {line}")


def cmd_agents(args: argparse.Namespace) -> int:
    from .spec import AgentError
    from .store import AgentStore

    store = AgentStore()
    action = args.agents_action
    try:
        if action == "list":
            agents = store.list()
            if args.json:
                _print_json([a.as_dict() for a in agents])
                return 0
            for a in agents:
                tools = ", ".join(a.tools) or "no tools"
                print(f"{a.name:<24} {a.model or '(default)':<36} {tools:<30} {a.id}")
            return 0
        if action == "show":
            spec = store.get(args.agent)
            if args.json:
                _print_json(spec.as_dict())
            else:
                _show(spec)
            return 0
        if action == "create":
            spec = store.create({"name": args.name, **_fields(args)})
            print(f"created {spec.name} ({spec.id})")
            return 0
        if action == "edit":
            changes = _fields(args)
            if not changes:
                raise CliError("nothing to change: give flags such as --model, --system or --tools")
            spec = store.update(args.agent, changes)
            print(f"saved {spec.name} ({spec.id})")
            return 0
        if action == "delete":
            spec = store.get(args.agent)
            if not args.yes:
                if not sys.stdin.isatty():
                    raise CliError(f"add --yes to delete {spec.name!r} without a terminal to confirm on")
                answer = input(f"Delete agent {spec.name!r}? Its sessions stay. [y/N] ").strip().lower()
                if answer not in ("y", "yes"):
                    print("kept")
                    return 1
            store.delete(spec.id)
            print(f"deleted {spec.name}")
            return 0
        if action == "export":
            data = store.export(args.agent)
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            if args.output:
                with open(args.output, "w", encoding="utf-8") as fh:
                    fh.write(text)
                print(f"wrote {len(data['agents'])} agent(s) to {args.output}", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        if action == "import":
            try:
                raw = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
            except OSError as exc:
                raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise CliError(f"{args.file}: not JSON (line {exc.lineno}: {exc.msg})") from None
            specs = store.import_(data, replace=args.replace)
            print(f"imported {', '.join(s.name for s in specs)}")
            return 0
    except AgentError as exc:
        raise CliError(str(exc)) from None
    raise AssertionError(action)


# --- chat ----------------------------------------------------------------------------------


class _Printer:
    """Renders a turn's events for a terminal: answer on stdout, the rest on stderr."""

    def __init__(self, json_mode: bool) -> None:
        self.json = json_mode
        self.dim = sys.stderr.isatty()
        self.in_text = False

    def _err(self, text: str) -> None:
        if self.in_text:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.in_text = False
        sys.stderr.write(f"\x1b[2m{text}\x1b[0m\n" if self.dim else text + "\n")
        sys.stderr.flush()

    def event(self, e: Any) -> None:
        if self.json:
            return
        kind = e.type
        if kind == "text":
            sys.stdout.write(e.text)
            sys.stdout.flush()
            self.in_text = True
        elif kind == "tool_call":
            self._err(f"→ {e.name}({json.dumps(e.arguments, ensure_ascii=False)[:300]})")
        elif kind == "tool_result":
            first = (e.content.splitlines() or [""])[0]
            self._err(f"{'✗' if e.is_error else '←'} {e.name}: {first[:300]}")
        elif kind == "memory_recalled":
            if e.memories:
                self._err("[memory: recalled " + ", ".join(f"#{m['id']}" for m in e.memories) + "]")
            elif e.error:
                self._err(f"[memory: {e.error}]")
        elif kind == "memory":
            self._err(f"[memory: {_memory_line(e)}]")
        elif kind == "compacted":
            self._err(f"[the conversation was compacted: {e.tokens_before:,} → {e.tokens_after:,} tokens]")
        elif kind == "done":
            if self.in_text:
                sys.stdout.write("\n")
                self.in_text = False
            if e.message:
                self._err(e.message)
            cost = "price unknown" if e.cost_usd is None else f"${e.cost_usd:.4f}"
            u = e.usage
            self._err(f"[{e.model} · {u.prompt_tokens:,} in ({u.cache_read_tokens:,} cached) / {u.output_tokens:,} out · {cost}]")


def _memory_line(e: Any) -> str:
    """One line for a turn's `memory` event: the changes, else the status and why."""
    words = {"add": "added", "update": "updated", "delete": "deleted"}
    changes = [f"{words.get(c['op'], c['op'])} " + (f"#{c['id']}" if c.get("id") is not None else str(c.get("path")))
               for c in e.changes]
    if changes:
        return ", ".join(changes) + ("" if e.status == "applied" else f" ({e.status}: {e.reason})")
    return f"{e.status}: {e.reason}"


async def _turn(agent: Any, prompt: str, session: str | None, model: str | None, printer: _Printer) -> Any:
    from .events import TurnDone, TurnError, TurnStart

    last: Any = None
    async for e in agent.astream(prompt, session_id=session, model=model):
        if isinstance(e, TurnStart):
            print(f"session: {e.session_id}", file=sys.stderr)
        printer.event(e)
        if isinstance(e, (TurnDone, TurnError)):
            last = e
    return last


def _load_agent(ref: str | None) -> Any:
    from .agent import Agent
    from .store import AgentStore

    store = AgentStore()
    spec = store.get(ref) if ref else store.default()
    return Agent.from_spec(spec)


def cmd_agent_chat(args: argparse.Namespace) -> int:
    """`synapse chat --agent NAME [--session ID] [PROMPT]`."""
    from ..errors import SynapseError
    from .events import TurnError
    from .spec import AgentError

    try:
        agent = _load_agent(args.agent)
    except AgentError as exc:
        raise CliError(str(exc)) from None
    text = " ".join(args.prompt)
    if not text and sys.stdin.isatty() and not args.json:
        return _interactive(agent, args)
    if text == "-" or not text:
        text = sys.stdin.read()
    if not text.strip():
        raise CliError("no prompt: give one as an argument, or `-` to read it from standard input")
    import asyncio

    printer = _Printer(args.json)
    last = asyncio.run(_with_session_closed(_turn(agent, text, args.session, args.model, printer)))
    if isinstance(last, TurnError):
        raise SynapseError(last.message)
    if args.json:
        _print_json({"response": last.text, "session_id": last.session_id, "agent": agent.name, "model": last.model,
                     "usage": last.usage.as_dict(), "cost_usd": last.cost_usd, "tool_calls": last.tool_calls,
                     "stop_reason": last.stop_reason})
    return 0


async def _with_session_closed(coro: Any) -> Any:
    from ..providers.transport import close_session

    try:
        return await coro
    finally:
        await close_session()


def _interactive(agent: Any, args: argparse.Namespace) -> int:
    """A chat on the terminal: arrow-key history, /new, /exit; Ctrl+C stops a reply."""
    import asyncio

    try:
        import readline  # noqa: F401  (arrow keys and history for input())
    except ImportError:  # pragma: no cover - not on every platform
        pass
    from .events import TurnDone, TurnError

    session = args.session
    print(f"Chatting with {agent.name}. /new starts a new session, /exit (or Ctrl+D) quits, Ctrl+C stops a reply.",
          file=sys.stderr)
    printer = _Printer(False)
    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    line = input("you › ")
                except EOFError:
                    print(file=sys.stderr)
                    return 0
                except KeyboardInterrupt:
                    print(file=sys.stderr)
                    return 0
                cmd = line.strip()
                if not cmd:
                    continue
                if cmd in ("/exit", "/quit"):
                    return 0
                if cmd == "/new":
                    session = None
                    print("(new session)", file=sys.stderr)
                    continue
                try:
                    last = runner.run(_turn(agent, line, session, args.model, printer))
                except KeyboardInterrupt:
                    sys.stdout.write("\n")
                    print("[stopped: the partial reply is kept in the session]", file=sys.stderr)
                    continue
                if isinstance(last, TurnError):
                    print(f"synapse: {last.message}", file=sys.stderr)
                    session = last.session_id or session
                elif isinstance(last, TurnDone):
                    session = last.session_id
        finally:
            from ..providers.transport import close_session

            runner.run(close_session())
