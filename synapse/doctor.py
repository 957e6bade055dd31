"""`synapse doctor`: what is wrong with this installation, and what fixes it.

Looks at the data folder and its files (private?), settings.json (parses? every value
passes the schema?), the database (opens, migrated), the default model, and every
configured provider live, with the same check as the web card's "Check again"
(`server/status.py`). `--fix` makes the data folder's files private again and removes
temp files a killed save left behind. `synapse info` reuses `check_providers`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .providers.catalog import ProviderSpec
    from .server.status import ProviderStatus
    from .settings import Settings

__all__ = ["Finding", "check_providers", "diagnose"]

Level = Literal["ok", "note", "problem"]


@dataclass(frozen=True, slots=True)
class Finding:
    area: str
    level: Level
    message: str
    #: What to run or change; empty when nothing is needed.
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"area": self.area, "level": self.level, "message": self.message, "fix": self.fix}


def check_providers(settings: Mapping[str, Any], timeout: float | None = None) -> list[tuple["ProviderSpec", "ProviderStatus"]]:
    """The live status of each provider a call could reach, checked concurrently.

    That is every provider the web page counts as set up, plus Ollama at its default
    address when bare model names go there (`mode` local): calls would reach it.
    """
    from .providers.catalog import PROVIDERS
    from .providers.routing import bare_name_provider
    from .providers.transport import close_session
    from .server.status import CHECK_TIMEOUT, StatusBoard

    # One attempt each: a command that reports status should answer now, not after backoff.
    once = {**dict(settings), "max_retries": 0}

    async def run() -> list[tuple[ProviderSpec, ProviderStatus]]:
        board = StatusBoard(timeout=timeout or CHECK_TIMEOUT)
        specs = []
        for spec in PROVIDERS:
            if spec.protocol == "huggingface":
                continue  # in-process: nothing to reach
            bare_target = spec.id == "ollama" and bare_name_provider(settings) == "ollama"
            if board.configured(spec, settings) or bare_target:
                board.start(spec, once, on_demand=True)
                specs.append(spec)
        try:
            return [(spec, await board.wait(spec, once)) for spec in specs]
        finally:
            await board.close()
            await close_session()

    return asyncio.run(run())


def _files(fix: bool) -> list[Finding]:
    from . import private_files, settings

    folder = settings.data_dir()
    if not folder.exists():
        return [Finding("data folder", "note", f"{folder} does not exist yet: Synapse creates it (mode 0700) on first save")]
    if not folder.is_dir():
        return [Finding("data folder", "problem", f"{folder} is a file, not a folder",
                        "move the file away, or point SYNAPSE_DATA_DIR at a folder")]
    out: list[Finding] = []
    removed = settings.remove_stale_temp_files() if fix else []
    if removed:
        out.append(Finding("settings", "ok", f"removed {len(removed)} temp file(s) an interrupted save left behind"))
    problems = private_files.problems(folder)
    if fix and problems:
        for path, mode, wanted in private_files.fix(folder):
            out.append(Finding("permissions", "ok", f"{path}: mode {mode:04o} -> {wanted:04o}"))
        problems = private_files.problems(folder)
    for path, mode, wanted in problems:
        out.append(Finding("permissions", "problem", f"{path} can be read by other users (mode {mode:04o})",
                           f"synapse doctor --fix (or chmod {wanted:o} {path})"))
    if not problems:
        out.append(Finding("permissions", "ok", f"{folder} and its files are private to you"))
    return out


def _settings_values(s: "Settings") -> list[Finding]:
    from .errors import SettingsError
    from .settings_schema import known, suggest, validate

    out = []
    for key, value in s.file_values.items():
        if known(key) is None:
            out.append(Finding("settings", "note", f"{key} is not a Synapse setting (kept as is)",
                               suggest(key).replace("did you mean", "did you mean to write").strip()))
            continue
        try:
            validate(key, value)
        except SettingsError as exc:
            out.append(Finding("settings", "problem", f"settings.json: {exc}",
                               f"synapse config set {key} VALUE (or synapse config unset {key})"))
    if not out:
        out.append(Finding("settings", "ok", f"{s.path}: every value is valid" if s.path.exists()
                           else f"{s.path} not created yet: defaults apply"))
    return out


def _database(s: "Settings") -> Finding:
    from . import storage

    url = storage.database_url(s)
    shown = url
    try:
        from .settings import shown as shown_value

        shown = str(shown_value("database_url", url))
        eng = storage.engine(url)
        with eng.connect() as conn:
            import sqlalchemy as sa

            count = conn.execute(sa.text("SELECT count(*) FROM usage_calls")).scalar()
        return Finding("database", "ok", f"{shown}: migrated to {storage.current_revision(eng)}, {count} calls recorded")
    except Exception as exc:  # any driver error: say which database and why
        from .providers.base import redact

        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return Finding("database", "problem", f"{shown}: cannot open it ({reason})",
                       "check database_url (`synapse config get database_url`) and that the database server runs")


def _unreadable(exc: Exception) -> Finding:
    """Why the settings cannot be read: the file, or in scale mode the secret key or the database."""
    from .scale.secrets import SecretKeyError
    from .scale.settings_store import is_scale
    from .settings import file_settings

    if isinstance(exc, SecretKeyError):
        return Finding("secret key", "problem", str(exc), "synapse secrets new, then set SYNAPSE_SECRET_KEY")
    try:
        scale = is_scale(file_settings())
    except Exception:
        scale = False
    if scale:
        return Finding("database", "problem", str(exc),
                       "start PostgreSQL, or fix SYNAPSE_DATABASE_URL / database_url in settings.json")
    return Finding("settings", "problem", str(exc), "fix the file by hand; Synapse will not overwrite it")


def _default_model(s: "Settings", reachable: Mapping[str, str]) -> Finding:
    from .errors import SynapseError
    from .providers.routing import resolve

    model = s.get_str("model")
    if not model:
        return Finding("model", "note", "no default model: `synapse chat` needs -m",
                       "synapse config set model claude-sonnet-4-5 (or any model you can reach)")
    try:
        route = resolve(model, s)
    except SynapseError as exc:
        return Finding("model", "problem", str(exc), "synapse config set model NAME")
    state = reachable.get(route.spec.id)
    if state is None:
        return Finding("model", "problem", f"default model {model} goes to {route.spec.label}, which is not set up",
                       f"set up {route.spec.label} (synapse config set {route.spec.missing_setting()} VALUE) "
                       "or pick another default")
    if state != "ok":
        return Finding("model", "problem", f"default model {model} goes to {route.spec.label}, which failed its check")
    return Finding("model", "ok", f"default model {model} goes to {route.spec.label}")


def _provider(spec: "ProviderSpec", status: "ProviderStatus", s: "Settings") -> Finding:
    config = spec.configure(s)
    where = f" at {config.base_url}" if spec.local else ""
    if status.state == "ok":
        return Finding(spec.label, "ok", f"connected{where} ({len(status.models)} models)")
    detail = f": {status.detail}" if status.detail and status.detail != status.reason else ""
    message = f"{status.reason or status.state}{where}{detail}"
    if spec.id == "ollama" and s.source("ollama_base_url") == "default":
        return Finding(spec.label, "note", f"not running{where}: bare model names go there (mode local)",
                       "start Ollama, or ignore this if you do not use bare model names")
    fix = f"synapse config set {spec.missing_setting()} VALUE" if status.reason == "Invalid key" else ""
    return Finding(spec.label, "problem", message, fix)


def diagnose(*, fix: bool = False, providers: bool = True) -> list[Finding]:
    """Every finding, in the order a user should read them."""
    from . import settings
    from .errors import SettingsError

    out = _files(fix)
    if any(f.area == "data folder" and f.level == "problem" for f in out):
        return out
    try:
        s = settings.load()
    except SettingsError as exc:
        return out + [_unreadable(exc)]
    out += _settings_values(s)
    out.append(_database(s))
    statuses = check_providers(s) if providers else []
    out.append(_default_model(s, {spec.id: st.state for spec, st in statuses} if providers else
                              {spec.id: "ok" for spec in _configured(s)}))
    out += [_provider(spec, st, s) for spec, st in statuses]
    if providers and not statuses:
        out.append(Finding("providers", "note", "no provider is set up",
                           "synapse config set anthropic_key … (or open Settings → Models in `synapse serve`)"))
    return out


def _configured(s: "Settings") -> list["ProviderSpec"]:
    from .providers.catalog import PROVIDERS
    from .server.status import is_configured

    return [spec for spec in PROVIDERS if is_configured(spec, s)]
