"""Every setting Synapse knows, in one table: key, default, meaning, environment, check.

`synapse config set`, the web API (`/api/settings`, the provider cards) and
`synapse doctor` all check values through `validate()`, so a value is judged the same
way wherever it is typed, and `DEFAULTS` is built from this table. Adding a setting is
one line in `SCHEMA`; a check names the setting and the expected form in its error,
never a secret's value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import SettingsError

__all__ = [
    "MODES",
    "SCHEMA",
    "Boolean",
    "Check",
    "Choice",
    "DatabaseUrl",
    "ModelList",
    "ModelName",
    "Networks",
    "Number",
    "OrEmpty",
    "RedisUrl",
    "Region",
    "Secret",
    "Setting",
    "Text",
    "Token",
    "UnknownSettingError",
    "Url",
    "describe",
    "known",
    "suggest",
    "validate",
]

_MAX_TEXT = 4096


class UnknownSettingError(SettingsError):
    """A key that is not in the schema (stored only with `--force`)."""

    kind = "unknown_setting"


class Check:
    """Turns a typed or sent value into the stored one, or raises SettingsError.

    `strict` is for JSON input (the web API): a boolean or number must arrive as a JSON
    boolean or number there, while the command line parses text ("true", "120").
    """

    #: The expected form, for `synapse config keys` and error messages.
    expects = "text"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        raise NotImplementedError

    @staticmethod
    def _line(label: str, value: Any, what: str = "text") -> str:
        """One line of text: numbers become text, anything else is refused."""
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SettingsError(f"{label} must be {what}")
        text = str(value).strip()
        if len(text) > _MAX_TEXT:
            raise SettingsError(f"{label} is too long (at most {_MAX_TEXT} characters)")
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise SettingsError(f"{label} must be one line of text")
        return text


class Text(Check):
    """One line of free text."""

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        return self._line(label, value)


class Secret(Check):
    """An API key: one token, no spaces. Errors never quote it."""

    expects = "a key (no spaces)"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value)
        if any(c.isspace() for c in text):
            raise SettingsError(f"{label} must not contain spaces: paste the key exactly as your provider shows it")
        return text


class Url(Check):
    """An http:// or https:// URL; a trailing slash is dropped. Empty: the default."""

    expects = "an http:// or https:// URL"

    def __init__(self, example: str = "https://host/v1") -> None:
        self.example = example

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value)
        if not text:
            return ""
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
            raise SettingsError(f"{label} must be an http:// or https:// URL, like {self.example}")
        return text.rstrip("/")


class DatabaseUrl(Check):
    """A SQLAlchemy URL (`sqlite:///path`, `postgresql+psycopg://…`). Empty: synapse.db."""

    expects = "a database URL (sqlite:///…, postgresql+psycopg://…)"
    _SCHEME = re.compile(r"^[a-z][a-z0-9+]*://")

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value)
        if text and not self._SCHEME.match(text):
            raise SettingsError(f"{label} must be a database URL such as sqlite:///path/synapse.db "
                                "or postgresql+psycopg://user:password@host/synapse")
        return text


class RedisUrl(Check):
    """redis://[:password@]host[:port][/db] or rediss:// (TLS). Empty: no Redis."""

    expects = "a Redis URL (redis://host:6379/0, rediss://…)"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value)
        if not text:
            return ""
        parts = urlsplit(text)
        if parts.scheme not in ("redis", "rediss") or not parts.netloc or any(c.isspace() for c in text):
            raise SettingsError(f"{label} must be a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS)")
        return text


class Boolean(Check):
    expects = "true or false"
    _TRUE = ("1", "true", "yes", "on")
    _FALSE = ("0", "false", "no", "off")

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, (str, int)):
            text = str(value).strip().lower()
            if text in self._TRUE:
                return True
            if text in self._FALSE:
                return False
        raise SettingsError(f"{label} must be true or false")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class Number(Check):
    """A number within bounds; `whole` for counts. Stored as a JSON number."""

    def __init__(self, *, gt: float | None = None, ge: float | None = None, le: float | None = None,
                 whole: bool = False) -> None:
        self.gt, self.ge, self.le, self.whole = gt, ge, le, whole
        kind = "a whole number" if whole else "a number"
        low = f"({_fmt(gt)}" if gt is not None else f"[{_fmt(ge)}" if ge is not None else ""
        if low and le is not None:
            self.expects = f"{kind} in {low}, {_fmt(le)}]"
        else:
            bounds = [f"> {_fmt(gt)}" if gt is not None else "", f">= {_fmt(ge)}" if ge is not None else "",
                      f"<= {_fmt(le)}" if le is not None else ""]
            self.expects = kind + "".join(f" {b}" for b in bounds if b)

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        number: float
        if isinstance(value, bool):
            raise SettingsError(f"{label} must be {self.expects}")
        if isinstance(value, (int, float)):
            number = value
        elif isinstance(value, str) and not strict:
            try:
                number = float(value.strip())
            except ValueError:
                raise SettingsError(f"{label} must be {self.expects}") from None
        else:
            raise SettingsError(f"{label} must be {self.expects}")
        if math.isnan(number) or math.isinf(number):
            raise SettingsError(f"{label} must be {self.expects}")
        if self.whole and number != int(number):
            raise SettingsError(f"{label} must be {self.expects}")
        out_of_range = (
            (self.gt is not None and not number > self.gt)
            or (self.ge is not None and not number >= self.ge)
            or (self.le is not None and not number <= self.le)
        )
        if out_of_range:
            raise SettingsError(f"{label} must be {self.expects}")
        return int(number) if float(number).is_integer() else float(number)


class Choice(Check):
    def __init__(self, *values: str) -> None:
        self.values = values
        self.expects = "one of: " + ", ".join(values)

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value, self.expects).lower() if isinstance(value, str) else value
        if text not in self.values:
            raise SettingsError(f"{label} must be {self.expects}")
        return text


class Region(Check):
    """An AWS region code (us-east-1, eu-central-1, us-gov-west-1)."""

    expects = "an AWS region code such as us-east-1"
    _REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}$")

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value)
        if text and not self._REGION.match(text):
            raise SettingsError(f"{label} must be an AWS region code such as us-east-1 or eu-central-1")
        return text


class ModelName(Check):
    """A model name as `synapse chat -m` takes it: no spaces, and one that routes somewhere."""

    expects = "a model name (no spaces)"

    def __init__(self, empty_means: str = "") -> None:
        self.empty_means = empty_means

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value, "a model name")
        if not text:
            return ""
        if any(c.isspace() for c in text) or len(text) > 256:
            hint = f" (empty: {self.empty_means})" if self.empty_means else ""
            raise SettingsError(f"{label} must be a model name without spaces, e.g. claude-sonnet-4-5{hint}")
        from .errors import UnknownModelError
        from .providers.routing import resolve

        try:
            resolve(text)
        except UnknownModelError as exc:
            raise SettingsError(f"{label}: {exc}") from None
        return text


class OrEmpty(Check):
    """Empty (a documented default applies), or a value `inner` accepts."""

    def __init__(self, inner: Check, empty_means: str) -> None:
        self.inner = inner
        self.expects = f"{inner.expects}, or empty for {empty_means}"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return ""
        try:
            return self.inner(label, value, strict=strict)
        except SettingsError:
            raise SettingsError(f"{label} must be {self.expects}") from None


class Token(Check):
    """One word: an id or ARN, no spaces."""

    def __init__(self, what: str) -> None:
        self.expects = f"{what} (no spaces)"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        text = self._line(label, value)
        if any(c.isspace() for c in text):
            raise SettingsError(f"{label} must be {self.expects}")
        return text


class ModelList(Check):
    """Comma-separated model names, stored as `a, b`."""

    expects = "model names separated by commas"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v).strip() for v in value if str(v).strip())
        names = [n.strip() for n in self._line(label, value).split(",") if n.strip()]
        bad = [n for n in names if any(c.isspace() for c in n) or len(n) > 256]
        if bad:
            raise SettingsError(f"{label}: model names are separated by commas and contain no spaces ({bad[0]!r})")
        return ", ".join(names)


class Networks(Check):
    """Comma-separated IP addresses or networks (`127.0.0.1, 10.0.0.0/8`)."""

    expects = "IP addresses or networks separated by commas"

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v).strip() for v in value if str(v).strip())
        import ipaddress

        items = [n.strip() for n in self._line(label, value).split(",") if n.strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(f"{label}: {item!r} is not an IP address or network such as 10.0.0.0/8") from None
        return ", ".join(items)


class Aliases(Check):
    """Model aliases: a JSON object of alias -> model name (`{"fast": "claude-haiku-4-5"}`)."""

    expects = 'a JSON object of alias -> model name, e.g. {"fast": "claude-haiku-4-5"}'

    def __call__(self, label: str, value: Any, *, strict: bool = False) -> Any:
        if isinstance(value, str):
            text = value.strip() or "{}"
            try:
                value = json.loads(text)
            except ValueError:
                raise SettingsError(f"{label} must be {self.expects}") from None
        if not isinstance(value, dict):
            raise SettingsError(f"{label} must be {self.expects}")
        out: dict[str, str] = {}
        for alias, target in value.items():
            alias = str(alias).strip()
            if not alias or any(c.isspace() for c in alias) or not isinstance(target, str) or not target.strip() \
                    or any(c.isspace() for c in target.strip()):
                raise SettingsError(f"{label}: {alias!r} -> {target!r}: aliases and model names contain no spaces")
            if target.strip() in value:
                raise SettingsError(f"{label}: {alias!r} names another alias ({target.strip()!r}); name a model")
            out[alias] = target.strip()
        return out


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the schema."""

    key: str
    default: Any
    meaning: str
    check: Check
    #: Environment variables that fill the setting when settings.json leaves it empty.
    env: tuple[str, ...] = ()


#: What `mode` may be: the provider family for bare model names and the default
#: embedding model (see `providers.routing.BARE_NAME_PROVIDER`).
MODES = ("local", "cloud", "bedrock")

_K, _B = Secret(), Boolean()
_DAY = 86400
_URL, _LIST = Url(), ModelList()

SCHEMA: tuple[Setting, ...] = (
    Setting("mode", "local", "where bare model names (no provider prefix) and the default embedding model go: "
            "local = Ollama and the bundled local model; cloud = the OpenAI-compatible cloud (oaic.) and its "
            "first embedding model; bedrock = AWS Bedrock and Titan embeddings", Choice(*MODES)),
    Setting("model", "", "default model for `synapse chat` and calls that name none", ModelName()),
    Setting("anthropic_key", "", "Anthropic API key", _K, ("ANTHROPIC_API_KEY",)),
    Setting("openai_key", "", "OpenAI API key", _K, ("OPENAI_API_KEY",)),
    Setting("gemini_key", "", "Google Gemini API key", _K, ("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    Setting("grok_key", "", "xAI Grok API key", _K, ("XAI_API_KEY",)),
    Setting("deepseek_key", "", "DeepSeek API key", _K, ("DEEPSEEK_API_KEY",)),
    Setting("bedrock_api_key", "", "AWS Bedrock API key", _K, ("AWS_BEARER_TOKEN_BEDROCK",)),
    Setting("aws_region", "us-east-1", "AWS region for Bedrock", Region(), ("AWS_REGION", "AWS_DEFAULT_REGION")),
    Setting("bedrock_inference_profile", "", "Bedrock inference profile id or ARN, used for every Bedrock chat call",
            Token("an inference profile id or ARN")),
    Setting("embedding_model", "", "default embedding model (empty: the one `mode` picks)",
            ModelName("the default of `mode`")),
    Setting("openai_compatible_key", "", "key of the OpenAI-compatible cloud (oaic.)", _K),
    Setting("openai_compatible_base_url", "", "base URL of the OpenAI-compatible cloud, ending in /v1",
            Url("https://openrouter.ai/api/v1")),
    Setting("openai_compatible_models", "", "chat models of the OpenAI-compatible cloud (comma-separated)", _LIST),
    Setting("openai_compatible_embed_models", "", "embedding models of the OpenAI-compatible cloud", _LIST),
    Setting("ollama_base_url", "http://127.0.0.1:11434", "Ollama server", Url("http://127.0.0.1:11434"),
            ("OLLAMA_BASE_URL",)),
    Setting("local_compatible_base_url", "", "local OpenAI-compatible server (locv1.), ending in /v1",
            Url("http://127.0.0.1:1234/v1")),
    Setting("local_compatible_key", "", "key of the local OpenAI-compatible server, if it wants one", _K),
    Setting("local_compatible_models", "", "chat models of the local OpenAI-compatible server", _LIST),
    Setting("local_compatible_embed_models", "", "embedding models of the local OpenAI-compatible server", _LIST),
    Setting("prompt_cache_enabled", True, "place prompt-cache breakpoints (Anthropic, Bedrock)", _B),
    Setting("openai_use_responses_api", False, "send every OpenAI model over POST /v1/responses, not Chat "
            "Completions (models only the Responses API serves go there anyway)", _B),
    Setting("hf_keep_loaded_minutes", 15, "minutes an idle in-process Hugging Face model stays loaded",
            Number(ge=0, le=10_000)),
    # Base-URL overrides (corporate proxies, tests). OpenAI and xAI end in /v1;
    # Anthropic, Gemini and DeepSeek are the bare origin.
    Setting("anthropic_base_url", "", "Anthropic API origin override", Url("https://api.anthropic.com"),
            ("ANTHROPIC_BASE_URL",)),
    Setting("openai_base_url", "", "OpenAI API override, ending in /v1", Url("https://api.openai.com/v1"),
            ("OPENAI_BASE_URL",)),
    Setting("gemini_base_url", "", "Gemini API origin override", Url("https://generativelanguage.googleapis.com")),
    Setting("grok_base_url", "", "xAI API override, ending in /v1", Url("https://api.x.ai/v1")),
    Setting("deepseek_base_url", "", "DeepSeek API origin override", Url("https://api.deepseek.com")),
    Setting("bedrock_runtime_url", "", "Bedrock runtime endpoint override",
            Url("https://bedrock-runtime.us-east-1.amazonaws.com")),
    Setting("bedrock_control_url", "", "Bedrock control-plane endpoint override",
            Url("https://bedrock.us-east-1.amazonaws.com")),
    # Call behaviour.
    Setting("request_timeout", 120, "seconds to wait for each attempt of a provider call", Number(gt=0, le=_DAY)),
    Setting("request_deadline", 300, "seconds a whole call may take, retries and backoff included (a stream: "
            "until its answer starts); 0: no deadline", Number(ge=0, le=_DAY)),
    Setting("max_retries", 2, "retries after a failed attempt (rate limits, overloads, 5xx)",
            Number(ge=0, le=100, whole=True)),
    # Storage and caches.
    Setting("database_url", "", "database for the usage ledger, agents, sessions, API keys (empty: synapse.db in "
            "the data folder); postgresql://… is scale mode: settings and logins move there too, provider keys "
            "encrypted with SYNAPSE_SECRET_KEY. SYNAPSE_DATABASE_URL wins over it", DatabaseUrl()),
    Setting("redis_url", "", "scale mode's Redis (redis://host:6379/0, rediss:// for TLS): shared response cache, "
            "rate limits and budgets, login throttling and sessions, status dots, settings-changed notices. "
            "SYNAPSE_REDIS_URL wins over it", RedisUrl()),
    Setting("response_cache_ttl", 3600, "seconds a response-cache entry lives", Number(ge=0, le=3650 * _DAY)),
    Setting("response_cache_similarity", 0.95, "cosine similarity a semantic response-cache hit needs",
            Number(gt=0, le=1)),
    # The /v1 gateway.
    Setting("gateway_open_on_loopback", False, "let /v1 requests from this machine in without an API key", _B),
    Setting("gateway_max_body_bytes", 20 * 1024 * 1024, "largest /v1 request body in bytes (default 20 MiB)",
            Number(ge=1, le=1024**3, whole=True)),
    Setting("model_aliases", {}, 'names that stand for a model, for every caller: {"fast": "claude-haiku-4-5"}',
            Aliases()),
    Setting("trusted_proxies", "", "reverse proxies (IPs or networks) whose X-Forwarded-For and "
            "X-Forwarded-Proto the web app believes; read when `synapse serve` starts", Networks(),
            ("SYNAPSE_TRUSTED_PROXIES",)),
    # Agents and chat.
    Setting("auto_compact_enabled", True, "shorten, then summarise, a session's history that outgrows the "
            "model's context window (the full original stays stored)", _B),
    Setting("http_get_allow_private", False, "let the http_get tool reach loopback and private addresses", _B),
    Setting("tool_timeout", 60, "seconds an agent tool may run before it is cut off with an error result",
            Number(gt=0, le=_DAY)),
    Setting("context_window", 0, "context window in tokens for compaction (0: the model's own, else 128000)",
            Number(ge=0, le=100_000_000, whole=True)),
    Setting("reply_reserve_tokens", 8192, "tokens kept free for the reply when deciding to compact",
            Number(ge=0, le=10_000_000, whole=True)),
    # Long-term memory (synapse/memory).
    Setting("memory_model", "", "model of the memory extraction call after each turn (empty: the agent's own)",
            ModelName("the agent's own model")),
    Setting("memory_auto_extract", True, "after each turn of an agent with memory on, extract what to remember", _B),
    Setting("memory_top_k", 5, "memories recalled before each turn", Number(ge=1, le=100, whole=True)),
    Setting("memory_min_similarity", "", "cosine similarity a memory needs to be recalled",
            OrEmpty(Number(ge=-1, le=1), "the embedding model's calibrated value")),
)

_BY_KEY = {s.key: s for s in SCHEMA}


def known(key: str) -> Setting | None:
    return _BY_KEY.get(key)


def suggest(key: str) -> str:
    """`did you mean 'anthropic_key'?` for a mistyped key, else ""."""
    import difflib

    close = difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=0.75)
    return f"did you mean {close[0]!r}? " if close else ""


def validate(key: str, value: Any, *, label: str | None = None, strict: bool = False,
             custom_ok: bool = False) -> Any:
    """The value to store for `key`, or SettingsError naming the key and the expected form.

    An unknown key raises UnknownSettingError (listing the known ones) unless `custom_ok`,
    which keeps a custom key's JSON value as it is.
    """
    setting = _BY_KEY.get(key)
    if setting is None:
        if custom_ok:
            return value
        raise UnknownSettingError(
            f"unknown setting {key!r}: {suggest(key)}known settings are {', '.join(_BY_KEY)} "
            "(`synapse config keys` says what each does; --force stores a custom key anyway)"
        )
    return setting.check(label or key, value, strict=strict)


def usable(key: str, settings: Any) -> Any:
    """`settings[key]` when it passes the key's check, else the default: a bad hand-edited
    value (`"request_timeout": -1`) never reaches a call; `synapse doctor` reports it."""
    setting = _BY_KEY[key]
    value = settings.get(key, setting.default) if settings is not None else setting.default
    if value is None or value == "":
        return setting.default
    try:
        return setting.check(key, value)
    except SettingsError:
        return setting.default


def describe() -> list[dict[str, Any]]:
    """Every setting as {key, default, expects, meaning, env}: `synapse config keys --json`."""
    return [{"key": s.key, "default": s.default, "expects": s.check.expects, "meaning": s.meaning,
             "env": list(s.env)} for s in SCHEMA]
