"""`hf.<repo id or folder>`: transformers in Synapse's own process.

The models are built here, in temp folders, with transformers itself (nothing can come
from the Hub): a tiny randomly initialised Llama, and two "scripted" ones whose weights
make greedy decoding follow a fixed chain of words, so the exact text, stop sequences,
token counts and tool calls can be asserted through the whole real path (chat template,
generate, streamer thread, tokenizer usage). Without torch these tests skip locally and
fail in CI (CI=true), which installs requirements-hf.lock.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import synapse
from synapse.errors import BadRequestError, ProviderNotInstalledError
from synapse.providers import adapter_for
from synapse.providers.catalog import get as get_spec
from synapse.providers.huggingface import INSTALL_HINT, parse_tool_calls
from synapse.providers.routing import resolve
from synapse.settings import load as load_settings
from synapse.types import Message, ResponseDone, TextDelta, TextPart, ToolCallDelta, ToolResultPart, Usage

HINT = ("Hugging Face local models need transformers and torch: pip install 'synapse-llm[hf]' "
        "(or pip install -r requirements-hf.lock)")
HUB = "hf.Qwen/Qwen2.5-0.5B-Instruct"
HAVE_TORCH = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None


def needs_torch() -> None:
    if HAVE_TORCH:
        return
    if os.environ.get("CI"):
        pytest.fail("CI must install requirements-hf.lock: transformers and torch are missing")
    pytest.skip("transformers and torch are not installed here (pip install -r requirements-hf.lock)")


# --- routing and the missing extra (simulated, so it runs everywhere) ------------------------------


def test_routing() -> None:
    route = resolve(HUB)
    assert (route.spec.id, route.upstream_model, route.bare) == ("hf", "Qwen/Qwen2.5-0.5B-Instruct", False)
    assert resolve("hf./models/my-llama").upstream_model == "/models/my-llama"  # a local folder works too
    assert INSTALL_HINT == HINT


@pytest.fixture
def no_transformers(monkeypatch: pytest.MonkeyPatch, synapse_env: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("transformers", "torch") else real(name, *a))


async def test_every_call_says_what_to_install(no_transformers: None) -> None:
    with pytest.raises(ProviderNotInstalledError) as exc:
        await synapse.achat(HUB, "hi")
    assert str(exc.value) == HINT and exc.value.kind == "not_installed"
    with pytest.raises(ProviderNotInstalledError, match=r"synapse-llm\[hf\]"):
        async for _ in synapse.astream(HUB, "hi"):
            pass
    with pytest.raises(ProviderNotInstalledError):
        await synapse.aembed("hf.intfloat/e5-small", ["x"])
    adapter = adapter_for(get_spec("hf"), load_settings())
    with pytest.raises(ProviderNotInstalledError):
        await adapter.verify()
    assert adapter.status_detail() == HINT


@pytest.mark.parametrize("extra", [[], ["--no-stream"]])
def test_cli_prints_one_line(no_transformers: None, cli: Any, extra: list[str]) -> None:
    res = cli("chat", "-m", HUB, *extra, "hi")
    assert res.code == 1 and res.out == ""
    assert res.err == f"synapse: {HINT}\n"


def test_subprocess_exit_code_and_no_traceback(synapse_env: Path) -> None:
    code = ("import importlib.util as u; real = u.find_spec; "
            "u.find_spec = lambda n, *a: None if n in ('transformers', 'torch') else real(n, *a); "
            "from synapse.cli import main; raise SystemExit(main(['chat', '-m', %r, 'hi']))" % HUB)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == f"synapse: {HINT}" and "Traceback" not in proc.stderr


# --- tiny models built with transformers ------------------------------------------------------------

SPECIALS = ["<eos>", "<pad>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<tools>"]
TEXT_SCRIPT = ["Hello", "world", "STOP", "again"]
TOOL_SCRIPT = ["<tool_call>", '{"name":', '"get_weather",', '"arguments":', '{"city":', '"Paris"}}', "</tool_call>"]
# Words the chat template and the tests' prompts use, so prompts tokenize without <unk>.
WORDS = ["hi", "hello", "be", "kind", "again", "18C", "sunny", "weather?"]
TEMPLATE = (
    "{%- if tools %}<tools> {% endif -%}"
    "{%- for m in messages %}<|{{ m.role }}|> {{ m.content }} {% endfor -%}"
    "{%- if add_generation_prompt %}<|assistant|>{% endif %}"
)
NO_TOOLS_TEMPLATE = TEMPLATE.replace("{%- if tools %}<tools> {% endif -%}", "")


def _build(folder: Path, script: list[str] | None, template: str) -> None:
    """A word-level tokenizer and a one-layer Llama. With `script`, the weights make each
    token's only likely successor the next word of the script (then <eos>): attention and
    MLP outputs are zeroed, so the logits depend on the last token alone."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = list(dict.fromkeys(SPECIALS + TEXT_SCRIPT + TOOL_SCRIPT + WORDS))
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = template
    size = len(vocab)
    hidden = size + size % 2
    config = LlamaConfig(vocab_size=size, hidden_size=hidden, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=256,
                         tie_word_embeddings=False, eos_token_id=0, pad_token_id=1, bos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    if script is not None:
        with torch.no_grad():
            model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            head = torch.zeros(size, hidden)
            chain = ["<|assistant|>", *script, "<eos>"]
            for before, after in zip(chain, chain[1:]):
                head[vocab[after], vocab[before]] = 10.0
            model.lm_head.weight.copy_(head)
    model.generation_config.do_sample = False
    model.save_pretrained(folder)
    fast.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    needs_torch()
    root = tmp_path_factory.mktemp("hf-models")
    out = {}
    for name, script, template in (("text", TEXT_SCRIPT, NO_TOOLS_TEMPLATE), ("tools", TOOL_SCRIPT, TEMPLATE),
                                   ("random", None, TEMPLATE)):
        _build(root / name, script, template)
        out[name] = "hf." + str(root / name)
    return out


@pytest.fixture
def hf(tiny: dict[str, str], configure: Any) -> Any:
    from synapse.providers import huggingface

    huggingface.unload_all()
    configure(hf_keep_loaded_minutes=15)
    yield tiny
    huggingface.unload_all()


def _prompt_tokens(folder: str, messages: list[dict[str, str]], **kw: Any) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    return len(tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, **kw)["input_ids"])


async def test_chat_follows_the_chat_template_and_counts_tokens(hf: dict[str, str]) -> None:
    r = await synapse.achat(hf["text"], "hi", system="be kind")
    assert r.text == "Hello world STOP again"
    assert (r.stop_reason, r.raw_stop_reason, r.provider, r.model) == ("end_turn", "eos", "hf", hf["text"])
    prompt = _prompt_tokens(hf["text"][3:], [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}])
    assert prompt == 6  # <|system|> be kind <|user|> hi <|assistant|>
    assert r.usage == Usage(input_tokens=6, output_tokens=5)  # four words and <eos>


async def test_stop_sequences_and_max_tokens(hf: dict[str, str]) -> None:
    r = await synapse.achat(hf["text"], "hi", stop=["STOP"])
    assert (r.text, r.stop_reason) == ("Hello world ", "stop_sequence")
    r = await synapse.achat(hf["text"], "hi", max_tokens=2)
    assert (r.text, r.stop_reason, r.usage.output_tokens) == ("Hello world", "max_tokens", 2)


async def test_stream_token_by_token(hf: dict[str, str]) -> None:
    events = [e async for e in synapse.astream(hf["text"], "hi")]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", " world", " STOP", " again"]
    assert isinstance(events[-1], ResponseDone) and events[-1].response.text == "Hello world STOP again"
    events = [e async for e in synapse.astream(hf["text"], "hi", stop=["STOP"])]
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert shown == events[-1].response.text == "Hello world " and "STOP" not in shown


async def test_tool_calls_from_the_models_template(hf: dict[str, str]) -> None:
    tools = [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    r = await synapse.achat(hf["tools"], "weather?", tools=tools)
    (call,) = r.tool_calls
    assert (call.name, call.arguments, r.text, r.stop_reason) == ("get_weather", {"city": "Paris"}, "", "tool_use")
    events = [e async for e in synapse.astream(hf["tools"], "weather?", tools=tools)]
    assert not [e for e in events if isinstance(e, TextDelta)]  # the markup is never shown as text
    (delta,) = [e for e in events if isinstance(e, ToolCallDelta)]
    assert (delta.name, json.loads(delta.arguments)) == ("get_weather", {"city": "Paris"})
    # The next turn, with the call and its result, renders through the template.
    history = [Message("user", [TextPart("weather?")]), r.to_message(),
               Message("user", [ToolResultPart(call.id, "18C sunny", name="get_weather")])]
    again = await synapse.achat(hf["tools"], history, tools=tools)
    assert again.usage.input_tokens > r.usage.input_tokens


async def test_a_template_without_tools_refuses_them(hf: dict[str, str]) -> None:
    with pytest.raises(BadRequestError, match="chat template does not take tools"):
        await synapse.achat(hf["text"], "hi", tools=[{"name": "f"}])


async def test_random_model_whole_path(hf: dict[str, str]) -> None:
    events = [e async for e in synapse.astream(hf["random"], "hello", max_tokens=12, temperature=0)]
    done = events[-1].response
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.text
    assert done.usage.input_tokens == _prompt_tokens(hf["random"][3:], [{"role": "user", "content": "hello"}])
    assert 1 <= done.usage.output_tokens <= 12


async def test_loaded_once_progress_reported_and_unloaded_when_idle(hf: dict[str, str], configure: Any) -> None:
    from synapse.providers import huggingface

    stages: list[str] = []
    listener = lambda p: stages.append(p.stage)  # noqa: E731
    huggingface.add_progress_listener(listener)
    try:
        await synapse.achat(hf["text"], "hi")
        await synapse.achat(hf["text"], "hi")
    finally:
        huggingface.remove_progress_listener(listener)
    assert stages == ["tokenizer", "weights", "device", "ready"]  # one load for two calls
    assert hf["text"][3:] in huggingface.loaded_models()
    (progress,) = [p for p in huggingface.loading() if p["model"] == hf["text"]]
    assert progress["stage"] == "ready" and progress["device"] == "cpu"
    configure(hf_keep_loaded_minutes=0)  # 0: unload as soon as a call ends
    await synapse.achat(hf["text"], "hi")
    assert hf["text"][3:] not in huggingface.loaded_models()


async def test_generation_never_blocks_the_event_loop(hf: dict[str, str]) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await synapse.achat(hf["random"], "hello", max_tokens=40, temperature=0)  # includes the first load
    stop.set()
    await task
    assert ticks >= 20


async def test_stopping_to_read_stops_generation(hf: dict[str, str]) -> None:
    from synapse.providers import huggingface

    stream = synapse.astream(hf["random"], "hello", max_tokens=200, temperature=0)
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    loaded = huggingface._models[hf["random"][3:]]
    for _ in range(200):  # the worker stops at the next token and lets go of the model
        if loaded.lock.acquire(blocking=False):
            loaded.lock.release()
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("generation went on after the caller stopped reading")


async def test_card_check_shows_versions_and_device(hf: dict[str, str]) -> None:
    import torch
    import transformers

    from synapse.server.status import StatusBoard

    board = StatusBoard()
    s = load_settings()
    board.start(get_spec("hf"), s, on_demand=True)
    status = await board.wait(get_spec("hf"), s)
    assert status.state == "ok"
    assert status.detail.startswith(f"transformers {transformers.__version__} and torch {torch.__version__} installed; "
                                    "models run on cpu")


def test_cli_shows_loading_progress(hf: dict[str, str], cli: Any) -> None:
    res = cli("chat", "-m", hf["text"], "--no-stream", "hi")
    assert res.code == 0 and res.out == "Hello world STOP again\n"
    prefix = f"synapse: {hf['text']}: "
    ours = [line[len(prefix):].split(" (")[0] for line in res.err.splitlines() if line.startswith(prefix)]
    assert ours == ["loading the tokenizer", "loading the weights", "moving the weights to cpu", "ready on cpu"]
    # transformers' own bar shows the weights as they load (and a Hub download, when there is one).
    assert "Loading weights" in res.err


# --- tool-call formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rest", "calls"),
    [
        ('Let me check.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', "Let me check.", [("f", {"a": 1})]),
        ('<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>{"name": "g", "arguments": "{\\"b\\": 2}"}</tool_call>',
         "", [("f", {}), ("g", {"b": 2})]),
        ('[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}]', "", [("f", {"a": 1})]),
        ('<|python_tag|>{"name": "f", "parameters": {"a": 1}}', "", [("f", {"a": 1})]),
        ("<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", []),
        ('{"answer": 42}', '{"answer": 42}', []),
        ("plain text", "plain text", []),
    ],
)
def test_parse_tool_calls(text: str, rest: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    got_rest, got = parse_tool_calls(text)
    assert got_rest == rest and [(c.name, c.arguments) for c in got] == calls
