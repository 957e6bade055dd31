"""The `synapse` command. Imports stay inside the commands so `synapse --help` is fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["int_range", "main"]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --- info / config / doctor ------------------------------------------------------------------


def _status_words(status: Any, base_url: str, local: bool) -> str:
    """A provider's live status in a few words, as its web card shows it."""
    where = f" at {base_url}" if local and base_url else ""
    if status.state == "ok":
        return f"connected{where} ({len(status.models)} models)"
    if status.state == "not_configured":
        return "not configured"
    return f"{status.reason or 'error'}{where}"


def cmd_info(args: argparse.Namespace) -> int:
    from . import __version__, settings
    from .providers.catalog import PROVIDERS
    from .server.status import is_configured

    s = settings.load()
    live = {}
    if not args.no_check:
        from .doctor import check_providers

        live = {spec.id: status for spec, status in check_providers(s)}
    providers = []
    for spec in PROVIDERS:
        config = spec.configure(s)
        configured = spec.is_configured(config)
        if spec.protocol == "huggingface":
            import importlib.util

            configured = importlib.util.find_spec("transformers") is not None
        elif spec.id == "ollama":
            configured = is_configured(spec, s, config)  # the default address alone is not "configured"
        entry: dict[str, Any] = {"id": spec.id, "label": spec.label, "configured": configured}
        if spec.key_setting:
            entry["key"] = settings.mask(config.api_key)
            entry["key_source"] = s.source(spec.key_setting) if config.api_key else None
        if spec.id == "bedrock" and config.aws_credentials:
            entry["sigv4"] = "AWS_ACCESS_KEY_ID " + settings.mask(config.aws_credentials[0])
        if spec.base_url_setting:
            entry["base_url"] = config.base_url
        status = live.get(spec.id)
        if status is not None:
            entry["status"] = {k: v for k, v in status.as_dict().items() if k != "checked_at"}
        providers.append(entry)
    info = {
        "version": __version__,
        "data_dir": str(settings.data_dir()),
        "settings_file": str(s.path),
        "settings_file_exists": s.path.exists(),
        "model": s.get_str("model") or None,
        "mode": s.get_str("mode"),
        "providers": providers,
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"Synapse {info['version']}")
    print(f"data folder:   {info['data_dir']}")
    print(f"settings file: {info['settings_file']}{'' if info['settings_file_exists'] else ' (not created yet)'}")
    print(f"default model: {info['model'] or '(none: set with `synapse config set model NAME`)'}")
    print(f"mode:          {info['mode']} (bare model names go to "
          f"{_bare_label(s)})")
    print("providers (not contacted):" if args.no_check else "providers:")
    for p, spec in zip(providers, PROVIDERS):
        status = live.get(p["id"])
        if status is not None:
            mark = _status_words(status, p.get("base_url", ""), spec.local)
        else:
            mark = "configured" if p["configured"] else "not configured"
        if p["id"] == "hf" and not p["configured"]:
            mark = "not installed (pip install 'synapse-llm[hf]')"
        detail = []
        if p.get("key"):
            detail.append(f"key {p['key']} ({p['key_source']})")
        if p.get("sigv4"):
            detail.append(p["sigv4"])
        if p.get("base_url") and (p["configured"] or not p.get("key")) and not (status is not None and spec.local):
            detail.append(p["base_url"])
        print(f"  {p['label']:<22} {mark}{'  ' + ', '.join(detail) if detail else ''}")
    return 0


def _bare_label(s: Any) -> str:
    from .providers.catalog import get
    from .providers.routing import bare_name_provider

    return get(bare_name_provider(s)).label


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose

    findings = diagnose(fix=args.fix, providers=not args.no_check)
    problems = [f for f in findings if f.level == "problem"]
    if args.json:
        _print_json({"ok": not problems, "findings": [f.as_dict() for f in findings]})
        return 1 if problems else 0
    marks = {"ok": "ok     ", "note": "note   ", "problem": "PROBLEM"}
    for f in findings:
        print(f"{marks[f.level]}  {f.area}: {f.message}")
        if f.fix and f.level != "ok":
            print(f"         fix: {f.fix}")
    print()
    print(f"{len(problems)} problem(s) found" if problems else "no problems found")
    return 1 if problems else 0


def cmd_config(args: argparse.Namespace) -> int:
    from . import settings

    if args.action == "list":
        s = settings.load()
        if args.json:
            _print_json(s.masked())
        else:
            for key, value in s.masked().items():
                src = s.source(key)
                print(f"{key} = {json.dumps(value, ensure_ascii=False)}" + (f"   # {src}" if src != "file" else ""))
        return 0
    if args.action == "keys":
        from .settings_schema import describe

        rows = describe()
        if args.json:
            _print_json(rows)
            return 0
        for row in rows:
            env = f"; env {' / '.join(row['env'])}" if row["env"] else ""
            print(f"{row['key']}  (default {json.dumps(row['default'])}; {row['expects']}{env})")
            print(f"    {row['meaning']}")
        return 0
    if args.action == "get":
        s = settings.load()
        if args.key not in s:
            raise _UsageError(f"unknown setting {args.key!r}: see `synapse config keys`")
        value = settings.shown(args.key, s[args.key])
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    if args.action == "set":
        from .settings_schema import validate

        value = args.value if args.value is not None else _read_value(args.key)
        stored = validate(args.key, value, custom_ok=args.force)  # unknown key: refused with the known ones
        settings.update({args.key: stored})
        shown = settings.shown(args.key, stored)
        print(f"{args.key} = {shown if isinstance(shown, str) else json.dumps(shown)}")
        return 0
    if args.action == "unset":
        from .settings_schema import known

        s = settings.load()
        if args.key not in s.file_values:
            if known(args.key) is None:
                raise _UsageError(f"unknown setting {args.key!r}, and settings.json has no such key: see `synapse config keys`")
            print(f"synapse: {args.key} is not set in {s.path}: nothing to remove "
                  f"(its value comes from {s.source(args.key)})", file=sys.stderr)
            return 1
        settings.update({args.key: None})
        after = settings.load()
        now = settings.shown(args.key, after[args.key]) if args.key in after else None
        print(f"{args.key} removed" + (f" (now {json.dumps(now, ensure_ascii=False)} from {after.source(args.key)})"
                                       if now not in (None, "") else ""))
        return 0
    raise AssertionError(args.action)


def _read_value(key: str) -> str:
    """The value for `config set KEY` with none given: a (hidden, for keys) prompt, or standard input.

    Typing a key at a prompt keeps it out of the shell history.
    """
    from . import settings

    if sys.stdin.isatty():
        if settings.is_secret(key):
            import getpass

            return getpass.getpass(f"{key} (typing is hidden): ")
        return input(f"{key}: ")
    value = _read_stdin().strip()
    if not value:
        raise _UsageError(f"no value for {key}: give it after the key, type it at the prompt, or pipe it in "
                          f"(`synapse config unset {key}` removes a setting)")
    return value


class _UsageError(Exception):
    kind = "usage"


# --- chat / models / embed ----------------------------------------------------------------


def _read_stdin() -> str:
    """All of standard input as text; bytes that are not UTF-8 are a usage error, not a traceback."""
    raw: str | bytes = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _UsageError(
            f"standard input is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}): "
            "convert it first, e.g. `iconv -f latin1 -t utf-8 FILE | synapse ...`"
        ) from None


def _stdin_piped() -> bool:
    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def _read_prompt(prompt: list[str]) -> str:
    """The prompt: the arguments; `-` reads stdin; arguments plus piped stdin are sent together.

    `echo data | synapse chat "summarise"` sends "summarise", a blank line, then the data
    (as simonw/llm does).
    """
    text = " ".join(prompt)
    if text == "-":
        text = _read_stdin()
        if not text.strip():
            raise _UsageError("standard input was empty: pipe the prompt in (`echo hi | synapse chat -`) or give it as an argument")
        return text
    if _stdin_piped():
        piped = _read_stdin()
        if piped.strip():
            text = f"{text}\n\n{piped}" if text.strip() else piped
    if not text.strip():
        raise _UsageError("no prompt: give one as an argument, or `-` to read it from standard input")
    return text


async def _chat(args: argparse.Namespace) -> int:
    from .client import achat, astream
    from .providers.transport import close_session
    from .types import Response, ResponseDone, TextDelta

    prompt = _read_prompt(args.prompt)
    kwargs: dict[str, Any] = {"system": args.system, "max_tokens": args.max_tokens, "temperature": args.temperature}
    shown = _show_local_loading(args.model)
    try:
        if args.no_stream:
            response = await achat(args.model, prompt, **kwargs)
            if not args.json:
                sys.stdout.write(response.text + "\n")
        else:
            streamed: Response | None = None
            async for event in astream(args.model, prompt, **kwargs):
                if isinstance(event, TextDelta) and not args.json:
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, ResponseDone):
                    streamed = event.response
            if streamed is None:
                raise _UsageError("the stream ended without a final response")  # adapters always end with one
            response = streamed
            if not args.json:
                sys.stdout.write("\n")
        if args.json:
            _print_json(response.as_dict())
        return 0
    finally:
        if shown is not None:
            shown()
        await close_session()


def _show_local_loading(model: str | None) -> Callable[[], None] | None:
    """An in-process Hugging Face model's first load takes a while: say on stderr what it
    is doing. Returns the function that stops it."""
    from . import settings

    name = (model or "").strip() or str(settings.load().get("model") or "").strip()
    if not name.startswith("hf."):
        return None
    from .providers import huggingface

    def show(progress: Any) -> None:
        sys.stderr.write(f"synapse: {progress.describe()}\n")
        sys.stderr.flush()

    huggingface.add_progress_listener(show)
    return lambda: huggingface.remove_progress_listener(show)


def cmd_chat(args: argparse.Namespace) -> int:
    import asyncio

    if args.agent or args.session:
        from .agents.cli import CliError, cmd_agent_chat

        try:
            return cmd_agent_chat(args)
        except CliError as exc:
            raise _UsageError(str(exc)) from None
    return asyncio.run(_chat(args))


async def _models(args: argparse.Namespace) -> int:
    import asyncio

    from . import settings
    from .providers import adapter_for
    from .providers.catalog import PROVIDERS
    from .providers.transport import close_session

    s = settings.load()
    specs = []
    for spec in PROVIDERS:
        if spec.protocol == "huggingface":
            continue
        config = spec.configure(s)
        explicitly_set = spec.id != "ollama" or s.source("ollama_base_url") != "default"
        if spec.is_configured(config) and (explicitly_set or args.all):
            specs.append(spec)

    async def one(spec: Any) -> tuple[Any, Any]:
        try:
            return spec, await adapter_for(spec, s).list_models()
        except Exception as exc:  # one provider failing must not hide the others
            return spec, exc

    try:
        results = await asyncio.gather(*(one(spec) for spec in specs))
    finally:
        await close_session()
    if args.json:
        _print_json(
            [
                {"provider": spec.id, "label": spec.label, "models": [m.id for m in models]}
                if not isinstance(models, Exception)
                else {"provider": spec.id, "label": spec.label, "error": str(models)}
                for spec, models in results
            ]
        )
        return 0
    if not results:
        print("no provider configured: set a key with `synapse config set anthropic_key …` (see `synapse info`)")
    for spec, models in results:
        print(f"{spec.label}:")
        if isinstance(models, Exception):
            print(f"  error: {models}")
            continue
        for m in models:
            print(f"  {m.id}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_models(args))


def cmd_embed(args: argparse.Namespace) -> int:
    from . import settings
    from .client import embed
    from .providers.routing import default_embedding_model

    texts = args.text or [line for line in _read_stdin().splitlines() if line.strip()]
    if not texts:
        raise _UsageError("nothing to embed: give texts as arguments or one per line on standard input")
    model = args.model or default_embedding_model(settings.load()) or "local"
    vectors = embed(model, texts)
    dims = len(vectors[0]) if vectors else 0
    if args.json:
        _print_json({"model": model, "dimensions": dims, "vectors": vectors})
        return 0
    label = "local (bundled multilingual-e5-small)" if model == "local" else model
    print(f"model:      {label}")
    print(f"dimensions: {dims}")
    print(f"vectors:    {len(vectors)}")
    for text, vector in zip(texts, vectors):
        head = ", ".join(f"{x:.4f}" for x in vector[:4])
        short = text if len(text) <= 40 else text[:39] + "…"
        print(f"  [{head}, …]  {short}")
    return 0


# --- parser -----------------------------------------------------------------------------------


def int_range(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, not {value}")
        return value

    return parse


#: No model writes more than this; it keeps --max-tokens inside every wire format's integers.
_MAX_TOKENS = 10_000_000
_port = int_range(0, 65535, "a port number")


_JSON_HELP = "print one JSON object (errors too: {\"error\": {\"kind\", \"message\"}})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synapse",
        description="Connect any LLM provider once; use every model through one interface. "
        "Start with `synapse serve` (the web app) or `synapse config set anthropic_key` then `synapse chat`.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="version, data folder, providers and whether each answers (keys masked)",
                       description="Version, data folder, default model, and each provider's live status "
                       "(the same check as the web card's Check again).")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument("--no-check", action="store_true", help="do not contact the providers (faster, offline)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("doctor", help="check the data folder, settings, database and providers; say what to fix",
                       description="Checks file permissions, settings.json values, the database, the default "
                       "model and every configured provider (live). Exit 1 when a problem is found.")
    p.add_argument("--fix", action="store_true", help="make the data folder and its files private (0700/0600) "
                   "and remove temp files an interrupted save left")
    p.add_argument("--no-check", action="store_true", help="do not contact the providers")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("config", help="read and change settings.json", description="Read and change settings.json. "
                       "`synapse config keys` lists every setting with its meaning and default.")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = csub.add_parser("get", help="print one setting (secrets masked)")
    c.add_argument("key", help="the setting, e.g. model")
    c = csub.add_parser("set", help="change one setting (checked: type, range, URL, region, known values)")
    c.add_argument("key", help="the setting, e.g. anthropic_key (see `synapse config keys`)")
    c.add_argument("value", nargs="?", help="the new value; leave it out to type it at a hidden prompt "
                   "(or pipe it in), which keeps a key out of your shell history")
    c.add_argument("--force", action="store_true", help="store a setting Synapse does not know")
    c = csub.add_parser("unset", help="remove one setting from the file (its default or environment value applies)")
    c.add_argument("key", help="the setting to remove")
    c = csub.add_parser("list", help="every setting with its effective value (secrets masked)")
    c.add_argument("--json", action="store_true", help=_JSON_HELP)
    c = csub.add_parser("keys", help="every setting Synapse knows, with its meaning, form and default")
    c.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("chat", help="send a prompt; the reply streams to stdout",
                       description="Send a prompt. Piped standard input is added after the prompt "
                       "(`cat notes.txt | synapse chat \"summarise\"`); `-` alone reads the prompt from it.")
    p.add_argument("prompt", nargs="*", help="the prompt; `-` reads standard input")
    p.add_argument("-m", "--model", help="model name (default: the `model` setting)")
    p.add_argument("-s", "--system", help="system prompt")
    p.add_argument("--max-tokens", type=int_range(1, _MAX_TOKENS), help="upper bound on reply tokens")
    p.add_argument("--temperature", type=float, help="sampling temperature (provider's range, often 0-2)")
    p.add_argument("--no-stream", action="store_true", help="make one non-streaming request")
    p.add_argument("--json", action="store_true", help="print one JSON object with text, tool calls and usage "
                   "(errors too: {\"error\": {\"kind\", \"message\"}})")
    p.add_argument("-a", "--agent", help="chat with this agent (tools, history); no prompt on a terminal: interactive")
    p.add_argument("--session", help="continue this session (its id is printed on stderr)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("models", help="list the models of the configured providers")
    p.add_argument("--json", action="store_true", help=_JSON_HELP)
    p.add_argument("--all", action="store_true", help="also ask Ollama at its default address")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("embed", help="embed texts and print a summary (default: the bundled local model)")
    p.add_argument("text", nargs="*", help="texts to embed; none: one per line from standard input")
    p.add_argument("-m", "--model", help="embedding model (default: the `embedding_model` setting, else the "
                   "one `mode` picks: local = the bundled model)")
    p.add_argument("--json", action="store_true", help="print the model, dimensions and every vector as JSON")
    p.set_defaults(func=cmd_embed)

    from .agents.cli import register as register_agents
    from .memory.cli import register as register_memory
    from .gateway.cli import register as register_keys
    from .server.cli_user import register as register_user
    from .usage.cli import register as register_usage

    register_user(sub)
    register_usage(sub)
    register_agents(sub)
    register_memory(sub)

    register_keys(sub)
    from .scale.cli import register as register_scale

    register_scale(sub)

    p = sub.add_parser("serve", help="start the web app (Chat, Agents, Settings) and the /v1 gateway")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; another "
                   "address needs a login from `synapse user set`)")
    p.add_argument("--port", type=_port, default=None, help="port (default: SYNAPSE_PORT, else 8000)")
    p.add_argument("--workers", type=int_range(1, 64), default=1, help="processes serving the one port (default 1)")
    p.set_defaults(func=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .server.run import serve

    if args.port is None:
        env = os.environ.get("SYNAPSE_PORT") or "8000"
        try:
            args.port = _port(env)
        except argparse.ArgumentTypeError as exc:
            raise _UsageError(f"SYNAPSE_PORT {exc}") from None
    return serve(args)


def _startup(args: argparse.Namespace) -> None:
    """Before each command: drop temp files a killed save left; warn while settings.json is readable by others."""
    if args.command == "doctor":
        return  # it reports and fixes both itself
    try:
        from . import private_files, settings

        path = settings.settings_path()
        settings.remove_stale_temp_files(path)
        mode = private_files.loose_mode(path)
    except Exception:  # a warning must never stop a command; the command reports real problems
        return
    if mode is not None:
        print(f"synapse: warning: {path} can be read by other users (mode {mode:04o}) and holds your keys: "
              f"run `synapse doctor --fix` or `chmod 600 {path}`", file=sys.stderr)


def _check_data_dir() -> None:
    """A data folder that exists but is a file stops every command with one clear line."""
    from .settings import data_dir

    folder = data_dir()
    if folder.exists() and not folder.is_dir():
        from .private_files import ensure_dir

        ensure_dir(folder)  # raises the SettingsError that says so


def _fail(args: argparse.Namespace, kind: str, message: str, code: int) -> int:
    """One line on stderr; with --json, the same error as a JSON object on stdout."""
    print(f"synapse: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        _print_json({"error": {"kind": kind, "message": message}})
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .errors import ConfigurationError, SettingsError, SynapseError, UnknownModelError

    _startup(args)
    from .agents.cli import CliError

    try:
        if args.command != "doctor":  # doctor reports it among its findings
            _check_data_dir()
        return int(args.func(args) or 0)
    except _UsageError as exc:
        return _fail(args, exc.kind, str(exc), 2)
    except CliError as exc:
        return _fail(args, "usage", str(exc), 2)
    except (SettingsError, ConfigurationError, UnknownModelError) as exc:
        return _fail(args, exc.kind, str(exc), 2)
    except SynapseError as exc:
        return _fail(args, exc.kind, str(exc), 1)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", "interrupted", 130)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an unexpected OS error: one line, the traceback on request
        if os.environ.get("SYNAPSE_DEBUG"):
            raise
        from .providers.base import redact

        detail = redact(str(exc)) if str(exc) else ""
        return _fail(args, "internal", f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
                     "(SYNAPSE_DEBUG=1 shows the traceback)", 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
