"""Every provider Synapse knows: its card, its settings, its routing prefixes, its protocol.

A provider that speaks an existing wire protocol is one entry here and nothing else.
`ProviderSpec.configure(settings)` turns the flat settings into the resolved
`ProviderConfig` an adapter is built from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["PROVIDERS", "RESPONSES_ONLY_MODELS", "CardField", "ProviderConfig", "ProviderSpec", "get", "protocol_for"]

FieldKind = Literal["secret", "text", "url", "list", "select"]


@dataclass(frozen=True, slots=True)
class CardField:
    """One input on a provider's Settings -> Models card, bound to one settings key."""

    setting: str
    label: str
    kind: FieldKind = "text"
    required: bool = False
    placeholder: str = ""
    help: str = ""
    #: Shown under the card's "Advanced" disclosure (base-URL overrides).
    advanced: bool = False


def _base_url(setting: str, default: str, form: str) -> CardField:
    """The Advanced base-URL override of a cloud card (a proxy or gateway in between)."""
    return CardField(setting, "Base URL", "url", False, default, f"Leave empty for {default}. {form}", advanced=True)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider's resolved settings: what an adapter needs, nothing else. Hashable."""

    api_key: str = field(default="", repr=False)  # never in a repr, log line or traceback
    base_url: str = ""
    region: str = ""
    control_url: str = ""
    inference_profile: str = ""
    models: tuple[str, ...] = ()
    embed_models: tuple[str, ...] = ()
    #: SigV4 credentials for Bedrock (access key, secret, session token), from the environment.
    aws_credentials: tuple[str, str, str] | None = field(default=None, repr=False)
    #: Seconds one attempt may wait for the provider (connect, then each read).
    timeout: float = 120.0
    max_retries: int = 2
    #: Whether bare model names (no prefix) route here under the `mode` setting.
    bare_names: bool = False
    #: Hugging Face in-process: unload a model idle this long (`hf_keep_loaded_minutes`).
    keep_loaded_minutes: float = 15.0
    #: Seconds one call may take in all, retries included, until the answer starts (0: none).
    deadline: float = 300.0


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    label: str
    #: Module under synapse.providers that speaks this provider's wire protocol.
    protocol: str
    #: Model-name prefixes that route here and are part of the upstream id (`claude-`).
    name_prefixes: tuple[str, ...] = ()
    #: Routing-only prefix, stripped before the call (`oaic.`).
    route_prefix: str = ""
    key_setting: str = ""
    key_hint: str = ""
    base_url_setting: str = ""
    default_base_url: str = ""
    console_url: str = ""
    console_label: str = ""
    fields: tuple[CardField, ...] = ()
    local: bool = False
    #: Whether a key is needed for the provider to count as configured.
    needs_key: bool = True
    #: Static model names from settings (comma-separated), for providers with no model list.
    models_setting: str = ""
    embed_models_setting: str = ""
    #: Seed model table: (model id, "best for" note); labels and fallback for the selector.
    known_models: tuple[tuple[str, str], ...] = field(default=())
    #: Whether every chat model of this provider reads images (providers/vision.py); None:
    #: it depends on the model, and only a model list can say.
    images: bool | None = None

    def configure(self, settings: Mapping[str, Any]) -> ProviderConfig:
        from .routing import bare_name_provider

        get = lambda key: str(settings.get(key) or "").strip() if key else ""  # noqa: E731
        split = lambda key: tuple(v.strip() for v in get(key).split(",") if v.strip())  # noqa: E731
        region = get("aws_region") if self.id == "bedrock" else ""
        base_url = get(self.base_url_setting) or self.default_base_url.format(region=region)
        control_url = ""
        creds = None
        if self.id == "bedrock":
            control_url = get("bedrock_control_url") or f"https://bedrock.{region}.amazonaws.com"
            access, secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
            if access and secret:
                creds = (access, secret, os.environ.get("AWS_SESSION_TOKEN", ""))
        from ..settings_schema import usable

        timeout = float(usable("request_timeout", settings))
        retries = int(usable("max_retries", settings))
        keep = float(usable("hf_keep_loaded_minutes", settings)) if self.protocol == "huggingface" else 15.0
        deadline = float(usable("request_deadline", settings))
        return ProviderConfig(
            api_key=get(self.key_setting),
            base_url=base_url.rstrip("/"),
            region=region,
            control_url=control_url.rstrip("/"),
            inference_profile=get("bedrock_inference_profile") if self.id == "bedrock" else "",
            models=split(self.models_setting),
            embed_models=split(self.embed_models_setting),
            aws_credentials=creds,
            timeout=timeout,
            max_retries=retries,
            bare_names=bare_name_provider(settings) == self.id,
            keep_loaded_minutes=keep,
            deadline=deadline,
        )

    def is_configured(self, config: ProviderConfig) -> bool:
        if self.id == "bedrock":
            return bool(config.api_key or config.aws_credentials)
        if self.needs_key and not config.api_key:
            return False
        return bool(config.base_url) or self.protocol == "huggingface"

    def missing_setting(self) -> str:
        """The setting a user must fill for this provider to work."""
        if self.needs_key:
            return self.key_setting
        return self.base_url_setting


_KEY = "API Key"

PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        id="anthropic",
        label="Anthropic Claude",
        protocol="anthropic",
        name_prefixes=("claude-",),
        key_setting="anthropic_key",
        key_hint="sk-ant-…",
        base_url_setting="anthropic_base_url",
        default_base_url="https://api.anthropic.com",
        console_url="https://console.anthropic.com/settings/keys",
        console_label="Anthropic Console",
        fields=(
            CardField("anthropic_key", _KEY, "secret", True, "sk-ant-…"),
            _base_url("anthropic_base_url", "https://api.anthropic.com", "The origin only, without /v1."),
        ),
        known_models=(
            ("claude-opus-4-5", "hardest reasoning and long agentic work"),
            ("claude-sonnet-4-5", "best balance of quality, speed and cost"),
            ("claude-haiku-4-5", "fast, cheap, high-volume tasks"),
        ),
        images=True,  # every Claude model since Claude 3 reads images
    ),
    ProviderSpec(
        id="openai",
        label="OpenAI",
        protocol="openai",
        name_prefixes=("gpt-", "chatgpt-", "o1", "o3", "o4", "codex-", "computer-use-"),
        key_setting="openai_key",
        key_hint="sk-…",
        base_url_setting="openai_base_url",
        default_base_url="https://api.openai.com/v1",
        console_url="https://platform.openai.com/api-keys",
        console_label="OpenAI platform",
        fields=(
            CardField("openai_key", _KEY, "secret", True, "sk-…"),
            _base_url("openai_base_url", "https://api.openai.com/v1", "It ends in /v1."),
        ),
        known_models=(
            ("gpt-5", "flagship general model"),
            ("gpt-5-mini", "cheaper everyday model"),
            ("gpt-4.1", "long context, strong tool use"),
            ("o3", "deliberate reasoning"),
            ("o4-mini", "fast reasoning"),
        ),
    ),
    ProviderSpec(
        id="gemini",
        label="Google Gemini",
        protocol="gemini",
        name_prefixes=("gemini-", "gemma-"),
        key_setting="gemini_key",
        key_hint="AIza…",
        base_url_setting="gemini_base_url",
        default_base_url="https://generativelanguage.googleapis.com",
        console_url="https://aistudio.google.com/app/apikey",
        console_label="Google AI Studio",
        fields=(
            CardField("gemini_key", _KEY, "secret", True, "AIza…"),
            _base_url("gemini_base_url", "https://generativelanguage.googleapis.com", "The origin only, without /v1beta."),
        ),
        known_models=(
            ("gemini-2.5-pro", "long documents and hard reasoning"),
            ("gemini-2.5-flash", "fast, cheap, multimodal"),
            ("gemini-2.5-flash-lite", "cheapest high-volume tasks"),
        ),
    ),
    ProviderSpec(
        id="xai",
        label="xAI Grok",
        protocol="openai",
        name_prefixes=("grok-",),
        key_setting="grok_key",
        key_hint="xai-…",
        base_url_setting="grok_base_url",
        default_base_url="https://api.x.ai/v1",
        console_url="https://console.x.ai",
        console_label="xAI console",
        fields=(
            CardField("grok_key", _KEY, "secret", True, "xai-…"),
            _base_url("grok_base_url", "https://api.x.ai/v1", "It ends in /v1."),
        ),
        known_models=(
            ("grok-4", "frontier reasoning"),
            ("grok-3-mini", "fast and cheap"),
        ),
    ),
    ProviderSpec(
        id="deepseek",
        label="DeepSeek",
        protocol="openai",
        name_prefixes=("deepseek-",),
        key_setting="deepseek_key",
        key_hint="sk-…",
        base_url_setting="deepseek_base_url",
        default_base_url="https://api.deepseek.com",
        console_url="https://platform.deepseek.com/api_keys",
        console_label="DeepSeek platform",
        fields=(
            CardField("deepseek_key", _KEY, "secret", True, "sk-…"),
            _base_url("deepseek_base_url", "https://api.deepseek.com", "The origin only."),
        ),
        known_models=(
            ("deepseek-chat", "cheap general chat and coding"),
            ("deepseek-reasoner", "step-by-step reasoning"),
        ),
        # the API takes text only: an image part is a 400 "unknown variant `image_url`, expected `text`"
        images=False,
    ),
    ProviderSpec(
        id="bedrock",
        label="AWS Bedrock",
        protocol="bedrock",
        route_prefix="bedrock.",
        key_setting="bedrock_api_key",
        key_hint="absk-…",
        base_url_setting="bedrock_runtime_url",
        default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
        console_url="https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html",
        console_label="AWS Bedrock API keys docs",
        fields=(
            CardField("bedrock_api_key", _KEY, "secret", True, "absk-…"),
            CardField("aws_region", "AWS Region", "text", True, "us-east-1"),
            CardField(
                "bedrock_inference_profile",
                "Inference Profile",
                "select",
                False,
                "none — direct invocation",
                "An inference profile id or ARN; used for every Bedrock chat call when set.",
            ),
            CardField("embedding_model", "Embedding Model", "text", False, "amazon.titan-embed-text-v2:0"),
            CardField("bedrock_runtime_url", "Runtime URL", "url", False, "https://bedrock-runtime.<region>.amazonaws.com",
                      "Leave empty for the region's endpoint; e.g. a VPC endpoint.", advanced=True),
            CardField("bedrock_control_url", "Control-plane URL", "url", False, "https://bedrock.<region>.amazonaws.com",
                      "Leave empty for the region's endpoint; used to list models and inference profiles.",
                      advanced=True),
        ),
        known_models=(
            ("anthropic.claude-sonnet-4-5-20250929-v1:0", "Claude on your AWS account"),
            ("amazon.nova-pro-v1:0", "Amazon's general model"),
            ("amazon.titan-embed-text-v2:0", "embeddings"),
        ),
    ),
    ProviderSpec(
        id="oaic",
        label="OpenAI Compatible",
        protocol="openai",
        route_prefix="oaic.",
        key_setting="openai_compatible_key",
        key_hint="the key your provider gave you",
        base_url_setting="openai_compatible_base_url",
        console_url="",
        fields=(
            CardField("openai_compatible_key", _KEY, "secret", True),
            CardField("openai_compatible_base_url", "Base URL", "url", True, "https://openrouter.ai/api/v1"),
            CardField("openai_compatible_models", "Model Names", "list", False, "model-a, model-b"),
            CardField("openai_compatible_embed_models", "Embedding Model Names", "list", False, "embed-model"),
        ),
        models_setting="openai_compatible_models",
        embed_models_setting="openai_compatible_embed_models",
    ),
    ProviderSpec(
        id="ollama",
        label="Ollama (Local)",
        protocol="ollama",
        route_prefix="ollama.",
        base_url_setting="ollama_base_url",
        default_base_url="http://127.0.0.1:11434",
        console_url="https://ollama.com/download",
        console_label="Ollama download",
        fields=(CardField("ollama_base_url", "Base URL", "url", True, "http://127.0.0.1:11434"),),
        local=True,
        needs_key=False,
    ),
    ProviderSpec(
        id="locv1",
        label="Local V1 Compatible",
        protocol="openai",
        route_prefix="locv1.",
        key_setting="local_compatible_key",
        base_url_setting="local_compatible_base_url",
        fields=(
            CardField("local_compatible_base_url", "Base URL", "url", True, "http://127.0.0.1:1234/v1"),
            CardField("local_compatible_key", _KEY, "secret", False),
            CardField("local_compatible_models", "Model Names", "list", False, "qwen2.5-7b-instruct"),
            CardField("local_compatible_embed_models", "Embedding Model Names", "list", False),
        ),
        local=True,
        needs_key=False,
        models_setting="local_compatible_models",
        embed_models_setting="local_compatible_embed_models",
    ),
    ProviderSpec(
        id="hf",
        label="Hugging Face (Local)",
        protocol="huggingface",
        route_prefix="hf.",
        console_url="https://huggingface.co/models",
        console_label="Hugging Face models",
        local=True,
        needs_key=False,
    ),
)

_BY_ID = {p.id: p for p in PROVIDERS}

#: OpenAI models that only `POST /v1/responses` serves (Chat Completions answers them
#: "This model is only supported in v1/responses and not in v1/chat/completions"):
#: the -pro reasoning models, the codex models, deep research and computer use.
#: They route to the `openai_responses` protocol whatever `openai_use_responses_api` says.
RESPONSES_ONLY_MODELS = re.compile(
    r"^(?:o1-pro|o3-pro|gpt-5(?:\.\d+)?-pro)(?:-\d{4}-\d{2}-\d{2})?$"
    r"|codex"
    r"|deep-research"
    r"|^computer-use-preview"
)


def protocol_for(spec: ProviderSpec, upstream_model: str, settings: Mapping[str, Any] | None) -> str:
    """The wire protocol a call to `upstream_model` at `spec` speaks.

    OpenAI has two: Chat Completions (`openai`) and the Responses API
    (`openai_responses`), which serves every model and is the only one for
    RESPONSES_ONLY_MODELS; `openai_use_responses_api` sends all OpenAI models there.
    """
    if spec.id != "openai":
        return spec.protocol
    if RESPONSES_ONLY_MODELS.search(upstream_model):
        return "openai_responses"
    flag = settings.get("openai_use_responses_api") if settings is not None else None
    if flag is True or (isinstance(flag, str) and flag.strip().lower() in ("1", "true", "yes", "on")):
        return "openai_responses"
    return spec.protocol


def get(provider_id: str) -> ProviderSpec:
    try:
        return _BY_ID[provider_id]
    except KeyError:
        raise KeyError(f"unknown provider {provider_id!r}; known: {', '.join(_BY_ID)}") from None
