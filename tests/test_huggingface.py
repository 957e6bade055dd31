"""`hf.<repo id>`: routing, the clear not-installed error, and the optional transformers path."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

import pytest

import synapse
from synapse.errors import BadRequestError, ProviderNotInstalledError
from synapse.providers import adapter_for
from synapse.providers.catalog import get as get_spec
from synapse.providers.huggingface import INSTALL_HINT
from synapse.providers.routing import resolve
from synapse.settings import load as load_settings
from synapse.types import ResponseDone, TextDelta, Usage

MODEL = "hf.Qwen/Qwen2.5-0.5B-Instruct"
HINT = "Hugging Face local models need the transformers and torch packages: pip install 'transformers' 'torch'"

needs_no_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is not None, reason="transformers is installed here"
)


def test_routing():
    route = resolve(MODEL)
    assert (route.spec.id, route.upstream_model, route.bare) == ("hf", "Qwen/Qwen2.5-0.5B-Instruct", False)
    assert INSTALL_HINT == HINT


@needs_no_transformers
async def test_every_call_says_what_to_install(synapse_env):
    with pytest.raises(ProviderNotInstalledError) as exc:
        await synapse.achat(MODEL, "hi")
    assert str(exc.value) == HINT and exc.value.kind == "not_installed"
    with pytest.raises(ProviderNotInstalledError, match="pip install 'transformers' 'torch'"):
        async for _ in synapse.astream(MODEL, "hi"):
            pass
    with pytest.raises(ProviderNotInstalledError, match="transformers"):
        await synapse.aembed("hf.intfloat/e5-small", ["x"])
    adapter = adapter_for(get_spec("hf"), load_settings())
    with pytest.raises(ProviderNotInstalledError):
        await adapter.verify()
    assert await adapter.list_models() == []
    assert "transformers" not in sys.modules


@needs_no_transformers
def test_sync_call_raises_the_same(synapse_env):
    with pytest.raises(ProviderNotInstalledError, match=r"^Hugging Face local models need"):
        synapse.chat(MODEL, "hi")


@needs_no_transformers
@pytest.mark.parametrize("extra", [[], ["--no-stream"]])
def test_cli_prints_one_line(cli, extra):
    res = cli("chat", "-m", MODEL, *extra, "hi")
    assert res.code == 1 and res.out == ""
    assert res.err == f"synapse: {HINT}\n"


@needs_no_transformers
def test_subprocess_exit_code_and_no_traceback(run_synapse):
    res = run_synapse("chat", "-m", MODEL, "hi")
    assert res.code == 1 and res.out == ""
    assert res.err.strip() == f"synapse: {HINT}" and "Traceback" not in res.err


# --- the optional in-process path, with a stand-in for transformers ----------------------------


class _Tokenizer:
    def apply_chat_template(self, messages, add_generation_prompt=False):
        return list(range(sum(len(m["content"].split()) for m in messages) + 3))

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


class _Pipeline:
    def __init__(self, model):
        self.model = model
        self.tokenizer = _Tokenizer()
        self.calls = []

    def __call__(self, messages, **kwargs):
        self.calls.append((messages, kwargs))
        return [{"generated_text": f"reply to {messages[-1]['content']} STOP ignored"}]


@pytest.fixture
def fake_transformers(monkeypatch, synapse_env):
    built = []

    def pipeline(task, model):
        assert task == "text-generation"
        built.append(_Pipeline(model))
        return built[-1]

    for name in ("transformers", "torch"):
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
        monkeypatch.setitem(sys.modules, name, mod)
    sys.modules["transformers"].pipeline = pipeline  # type: ignore[attr-defined]
    return built


async def test_transformers_pipeline_chat_and_stream(fake_transformers):
    r = await synapse.achat(MODEL, "hello you", system="be kind", max_tokens=50, temperature=0.7, stop=["STOP"])
    (pipe,) = fake_transformers
    assert pipe.model == "Qwen/Qwen2.5-0.5B-Instruct"
    messages, kwargs = pipe.calls[0]
    assert messages == [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hello you"}]
    assert kwargs["max_new_tokens"] == 50 and kwargs["temperature"] == 0.7 and kwargs["do_sample"] is True
    assert kwargs["stop_strings"] == ["STOP"] and kwargs["return_full_text"] is False
    assert r.text == "reply to hello you "
    assert (r.stop_reason, r.provider, r.model) == ("stop_sequence", "hf", MODEL)
    assert r.usage == Usage(input_tokens=4 + 3, output_tokens=4)

    events = [e async for e in synapse.astream(MODEL, "again")]
    assert [type(e) for e in events] == [TextDelta, ResponseDone]
    assert events[0].text == events[1].response.text == "reply to again STOP ignored"
    assert len(fake_transformers) == 1  # the pipeline is built once and reused


async def test_transformers_path_refuses_tools(fake_transformers):
    with pytest.raises(BadRequestError, match="tools"):
        await synapse.achat(MODEL, "hi", tools=[{"name": "f"}])
