"""Arguments of the wrong shape: Synapse's own BadRequestError, naming the argument and what
it accepts, raised before any request reaches the provider (the fake must see nothing)."""

from __future__ import annotations

from typing import Any

import pytest

import synapse
from synapse.errors import BadRequestError


@pytest.fixture
def fake(ollama: Any) -> Any:
    return ollama


OK_MESSAGES = [{"role": "user", "content": "hi"}]

# (keyword arguments to achat, the start of the message that must name the argument)
BAD_CALLS: list[tuple[dict[str, Any], str]] = [
    ({"messages": 123}, "messages must be a prompt string or a list of messages"),
    ({"messages": None}, "messages must be a prompt string or a list of messages"),
    ({"messages": b"hi"}, "messages must be a prompt string"),
    ({"messages": {"role": "user", "content": "hi"}}, "messages must be a prompt string or a list"),
    ({"messages": ""}, "the prompt is empty"),
    ({"messages": [42]}, "messages[0] must be a message dict or a synapse.Message"),
    ({"stop": 5}, "stop must be a string or a list of strings"),
    ({"stop": ["END", 5]}, "stop must be a string or a list of strings"),
    ({"system": 5}, "system must be a string or a list of strings"),
    ({"system": ["ok", 5]}, "system must be a string or a list of strings"),
    ({"tools": "search"}, "tools must be a list of tools"),
    ({"tools": ["search"]}, "tools must be a list of tools"),
    ({"tools": [{"name": "t", "parameters": "x"}]}, "tool 't''s parameters must be a JSON Schema object"),
    ({"model": 5}, "model must be a model name"),
    ({"context": "x"}, "context must be a synapse.CallContext"),
    ({"settings": "x"}, "settings must be a settings mapping"),
    ({"max_tokens": "100"}, "max_tokens must be a whole number of at least 1"),
    ({"max_tokens": 0}, "max_tokens must be a whole number of at least 1"),
    ({"max_tokens": True}, "max_tokens must be a whole number"),
    ({"temperature": "hot"}, "temperature must be a number of at least 0"),
    ({"tool_choice": 1}, "tool_choice must be"),
    ({"extra": ["x"]}, "extra must be a dict"),
    ({"max_total_cost_usd": "1"}, "max_total_cost_usd must be a number"),
    ({"cache": "always"}, "cache must be 'exact', 'semantic' or off"),
    # content of the wrong shape used to go out as an empty, billed prompt
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content must be a string or a list of parts"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content must be a string or a list of parts"),
    ({"messages": [{"role": "user", "content": {"text": "hi"}}]}, "messages[0].content must be a string or a list"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "a text part's `text` must be a string"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "a text part's `text` must be"),
    ({"messages": [{"role": "user", "content": ["fine", 3]}]}, "messages[0].content[1] must be a part dict"),
    ({"messages": [{"role": "user", "content": ""}]}, "every message is empty"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": "f"}, {"role": "user", "content": "x"}]},
     "messages[0].tool_calls must be a list of tool-call dicts"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_CALLS, ids=[m for _, m in BAD_CALLS])
async def test_a_bad_argument_is_a_bad_request_before_any_request(fake, kwargs: dict[str, Any], message: str) -> None:
    args = {"model": "llama3.2", "messages": OK_MESSAGES, **kwargs}
    model, messages = args.pop("model"), args.pop("messages")
    with pytest.raises(BadRequestError) as caught:
        await synapse.achat(model, messages, **args)
    assert str(caught.value).startswith(message), str(caught.value)
    assert fake.requests == []
    # the streaming form checks the same arguments before its first event
    with pytest.raises(BadRequestError):
        async for _ in synapse.astream(model, messages, **args):
            pass
    assert fake.requests == []


@pytest.mark.parametrize(
    ("model", "texts", "message"),
    [
        (5, ["a"], "model must be a model name"),
        ("ollama.nomic-embed-text", 5, "texts must be a string or a list of strings"),
        ("ollama.nomic-embed-text", ["a", None], "texts must be a string or a list of strings"),
        ("ollama.nomic-embed-text", None, "texts must be a string or a list of strings"),
    ],
)
async def test_bad_embedding_arguments_are_bad_requests(fake, model: Any, texts: Any, message: str) -> None:
    with pytest.raises(BadRequestError, match="^" + message.replace("(", r"\(")):
        await synapse.aembed(model, texts)
    assert fake.requests == []


def test_a_wrong_string_value_is_never_echoed() -> None:
    """A key pasted into the wrong argument must not come back in the error message."""
    from synapse.client import build_request

    with pytest.raises(BadRequestError) as caught:
        build_request("m", "hi", tools="sk-ant-api03-secretsecretsecret")  # type: ignore[arg-type]
    assert "secret" not in str(caught.value) and "a string" in str(caught.value)


async def test_accepted_shapes_still_go_through(fake) -> None:
    reply = await synapse.achat(
        "llama3.2",
        [
            {"role": "user", "content": ["part one", {"type": "text", "text": "part two"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        system=("be brief",),
        stop=("END", "STOP"),
        tools=({"name": "f"},),
        max_tokens=10,
        temperature=0.5,
    )
    assert reply.text
    body = fake.last.json()
    assert body["messages"][1] == {"role": "user", "content": "part one\npart two"}
    assert body["options"]["stop"] == ["END", "STOP"]
