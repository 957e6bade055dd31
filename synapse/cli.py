"""The `synapse` command. Imports stay inside the commands so `synapse --help` is fast."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --- info / config ---------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    from . import __version__, settings
    from .providers.catalog import PROVIDERS

    s = settings.load()
    providers = []
    for spec in PROVIDERS:
        config = spec.configure(s)
        configured = spec.is_configured(config)
        if spec.protocol == "huggingface":
            import importlib.util

            configured = importlib.util.find_spec("transformers") is not None
        entry: dict[str, Any] = {"id": spec.id, "label": spec.label, "configured": configured}
        if spec.key_setting:
            entry["key"] = settings.mask(config.api_key)
            entry["key_source"] = s.source(spec.key_setting) if config.api_key else None
        if spec.id == "bedrock" and config.aws_credentials:
            entry["sigv4"] = "AWS_ACCESS_KEY_ID " + settings.mask(config.aws_credentials[0])
        if spec.base_url_setting:
            entry["base_url"] = config.base_url
        providers.append(entry)
    info = {
        "version": __version__,
        "data_dir": str(settings.data_dir()),
        "settings_file": str(s.path),
        "settings_file_exists": s.path.exists(),
        "model": s.get_str("model") or None,
        "providers": providers,
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"Synapse {info['version']}")
    print(f"data folder:   {info['data_dir']}")
    print(f"settings file: {info['settings_file']}{'' if info['settings_file_exists'] else ' (not created yet)'}")
    print(f"default model: {info['model'] or '(none: set with `synapse config set model NAME`)'}")
    print("providers:")
    for p in providers:
        mark = "configured" if p["configured"] else "not configured"
        if p["id"] == "hf" and not p["configured"]:
            mark = "not installed (pip install transformers torch)"
        detail = []
        if p.get("key"):
            detail.append(f"key {p['key']} ({p['key_source']})")
        if p.get("sigv4"):
            detail.append(p["sigv4"])
        if p.get("base_url") and (p["configured"] or not p.get("key")):
            detail.append(p["base_url"])
        print(f"  {p['label']:<22} {mark}{'  ' + ', '.join(detail) if detail else ''}")
    return 0


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
    if args.action == "get":
        s = settings.load()
        if args.key not in s:
            raise _UsageError(f"unknown setting {args.key!r}: see `synapse config list`")
        value = settings.shown(args.key, s[args.key])
        print(value if isinstance(value, str) else json.dumps(value))
        return 0
    if args.action == "set":
        if args.key not in settings.DEFAULTS and not args.force:
            raise _UsageError(
                f"unknown setting {args.key!r}: known settings are listed by `synapse config list` "
                "(add --force to store it anyway)"
            )
        settings.update({args.key: args.value})
        print(f"{args.key} = {settings.shown(args.key, args.value)}")
        return 0
    if args.action == "unset":
        settings.update({args.key: None})
        print(f"{args.key} removed")
        return 0
    raise AssertionError(args.action)


class _UsageError(Exception):
    pass


# --- chat / models / embed ----------------------------------------------------------------


def _read_prompt(prompt: list[str]) -> str:
    text = " ".join(prompt)
    if text == "-" or (not text and not sys.stdin.isatty()):
        text = sys.stdin.read()
    if not text.strip():
        raise _UsageError("no prompt: give one as an argument, or `-` to read it from standard input")
    return text


async def _chat(args: argparse.Namespace) -> int:
    from .client import achat, astream
    from .providers.transport import close_session
    from .types import Response, ResponseDone, TextDelta

    prompt = _read_prompt(args.prompt)
    kwargs: dict[str, Any] = {"system": args.system, "max_tokens": args.max_tokens, "temperature": args.temperature}
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
        await close_session()


def cmd_chat(args: argparse.Namespace) -> int:
    import asyncio

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
    from .client import embed

    texts = args.text or [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not texts:
        raise _UsageError("nothing to embed: give texts as arguments or one per line on standard input")
    vectors = embed(args.model, texts)
    _print_json({"model": args.model or "default", "dimensions": len(vectors[0]) if vectors else 0, "vectors": vectors})
    return 0


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synapse",
        description="Connect any LLM provider once; use every model through one interface.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="version, data folder, configured providers (keys masked)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("config", help="read and change settings.json")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = csub.add_parser("get", help="print one setting (secrets masked)")
    c.add_argument("key")
    c = csub.add_parser("set", help="change one setting")
    c.add_argument("key")
    c.add_argument("value")
    c.add_argument("--force", action="store_true", help="store a setting Synapse does not know")
    c = csub.add_parser("unset", help="remove one setting from the file")
    c.add_argument("key")
    c = csub.add_parser("list", help="every setting with its effective value (secrets masked)")
    c.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("chat", help="send a prompt; the reply streams to stdout")
    p.add_argument("prompt", nargs="*", help="the prompt; `-` reads standard input")
    p.add_argument("-m", "--model", help="model name (default: the `model` setting)")
    p.add_argument("-s", "--system", help="system prompt")
    p.add_argument("--max-tokens", type=int, help="upper bound on reply tokens")
    p.add_argument("--temperature", type=float)
    p.add_argument("--no-stream", action="store_true", help="make one non-streaming request")
    p.add_argument("--json", action="store_true", help="print one JSON object with text, tool calls and usage")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("models", help="list the models of the configured providers")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="also ask Ollama at its default address")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("embed", help="embed texts (default: the bundled local model)")
    p.add_argument("text", nargs="*")
    p.add_argument("-m", "--model", help="embedding model (default: the `embedding_model` setting, else local)")
    p.set_defaults(func=cmd_embed)

    from .gateway.cli import register as register_keys
    from .server.cli_user import register as register_user
    from .usage.cli import register as register_usage

    register_user(sub)
    register_usage(sub)
    register_keys(sub)

    p = sub.add_parser("serve", help="start the web app (Settings → Models, Usage) and the /v1 gateway")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("SYNAPSE_PORT") or 8000))
    p.add_argument("--workers", type=int, default=1, help="processes serving the one port (default 1)")
    p.set_defaults(func=_serve)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .server.run import serve

    return serve(args)


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

    try:
        return int(args.func(args) or 0)
    except _UsageError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    except (SettingsError, ConfigurationError, UnknownModelError) as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 2
    except SynapseError as exc:
        print(f"synapse: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synapse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
