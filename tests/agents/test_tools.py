"""Tools: schemas from type hints and docstrings, safe runs, the built-in tools."""

from __future__ import annotations

import asyncio
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest

from synapse.agents.builtin_tools import builtin_tools, calculator, current_time, http_get
from synapse.agents.tools import function_tool, parse_docstring


class Unit(Enum):
    C = "celsius"
    F = "fahrenheit"


def weather(city: str, days: int = 1, unit: Unit = Unit.C, detail: Literal["short", "long"] = "short",
            tags: list[str] | None = None) -> dict[str, Any]:
    """The forecast for a city.

    Uses the national weather service.

    Args:
        city: the city's name,
            e.g. "Paris".
        days (int): how many days ahead.
        unit: degrees.
        detail: how much to say.
    Returns:
        the forecast.
    """
    return {"city": city, "days": days, "unit": unit.value, "detail": detail, "tags": tags}


def test_schema_from_type_hints_and_google_docstring() -> None:
    tool = function_tool(weather)
    assert tool.name == "weather" and tool.description == "The forecast for a city."
    p = tool.parameters
    assert p["type"] == "object" and p["required"] == ["city"] and p["additionalProperties"] is False
    props = p["properties"]
    assert props["city"] == {"type": "string", "description": 'the city\'s name, e.g. "Paris".'}
    assert props["days"] == {"type": "integer", "default": 1, "description": "how many days ahead."}
    assert props["detail"]["enum"] == ["short", "long"]
    assert props["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert "$defs" in p and p["$defs"]["Unit"]["enum"] == ["celsius", "fahrenheit"]


def test_sphinx_docstrings_too() -> None:
    desc, params = parse_docstring("""Add numbers.

    :param a: the first
    :param int b: the second,
        continued
    :returns: the sum
    """)
    assert desc == "Add numbers." and params == {"a": "the first", "b": "the second, continued"}


async def test_run_validates_converts_and_calls_sync_and_async() -> None:
    tool = function_tool(weather)
    out = await tool.run({"city": "Paris", "days": "3", "unit": "fahrenheit"})
    assert not out.is_error
    assert out.content == '{"city":"Paris","days":3,"unit":"fahrenheit","detail":"short","tags":null}'
    bad = await tool.run({"city": "Paris", "days": "many"})
    assert bad.is_error and "invalid arguments for weather" in bad.content and "days" in bad.content
    extra = await tool.run({"city": "Paris", "colour": "red"})
    assert extra.is_error and "colour" in extra.content

    async def shout(text: str) -> str:
        """Upper-case it."""
        await asyncio.sleep(0)
        return text.upper()

    assert (await function_tool(shout).run({"text": "hi"})).content == "HI"


async def test_exceptions_and_timeouts_become_error_results() -> None:
    def boom() -> None:
        """Fails."""
        raise ValueError("nope")

    async def hang() -> None:
        """Hangs."""
        await asyncio.sleep(10)

    assert (await function_tool(boom).run({})).content == "boom failed: ValueError: nope"
    out = await function_tool(hang).run({}, timeout=0.05)
    assert out.is_error and out.content == "hang took longer than 0.05 s and was stopped"


def test_bad_tool_definitions_are_refused_clearly() -> None:
    from synapse.errors import SynapseError

    with pytest.raises(SynapseError, match="must be 1-64 letters"):
        function_tool(lambda: None)
    with pytest.raises(SynapseError, match="must be a function"):
        function_tool("calculator")  # type: ignore[arg-type]


@pytest.mark.parametrize(("expr", "value"), [
    ("(2 + 3) * 4 / 8", "2.5"), ("2^10", "1024"), ("7 // 2 + 7 % 2", "4"), ("sqrt(16) + abs(-2)", "6"),
    ("round(pi, 3)", "3.142"), ("-(-3)", "3"), ("max(1, 5, 3)", "5"),
])
def test_calculator(expr: str, value: str) -> None:
    assert calculator(expr) == value


@pytest.mark.parametrize(("expr", "message"), [
    ("__import__('os').system('id')", "not allowed"), ("open('/etc/passwd')", "not allowed"),
    ("1/0", "division by zero"), ("9**9**9", "too large"), ("2 +", "not an arithmetic expression"),
    ("'a' * 3", "not allowed"), ("[1, 2]", "not allowed"),
])
def test_calculator_refuses_what_is_not_arithmetic(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculator(expr)


def test_current_time() -> None:
    assert current_time().endswith(")") and "+00:00" in current_time()
    assert "+01:00" in current_time("Europe/Paris") or "+02:00" in current_time("Europe/Paris")
    with pytest.raises(ValueError, match="unknown time zone"):
        current_time("Mars/Olympus")


def test_builtin_tools_have_schemas() -> None:
    tools = builtin_tools()
    assert set(tools) == {"current_time", "calculator", "http_get"}
    assert tools["calculator"].parameters["required"] == ["expression"]


@pytest.fixture
def text_server() -> Any:
    """A loopback page server (http_get must refuse it unless private addresses are allowed)."""
    from tests.fakes.base import FakeServer
    from aiohttp import web

    class Pages(FakeServer):
        name = "pages"

        def routes(self) -> list[web.RouteDef]:
            async def page(request: web.Request) -> web.Response:
                return web.Response(text="hello " * 100_000, content_type="text/plain")

            async def image(request: web.Request) -> web.Response:
                return web.Response(body=b"\x89PNG", content_type="image/png")

            return [web.get("/page", page), web.get("/image", image)]

    server = Pages().start()
    yield server
    server.stop()


async def test_http_get_refuses_loopback_and_private_addresses(synapse_env: Path, text_server: Any) -> None:
    for url in (f"{text_server.url}/page", "http://10.1.2.3/", "http://[::1]:9/", "http://169.254.169.254/latest"):
        with pytest.raises(PermissionError, match="http_get_allow_private"):
            await http_get(url)
    with pytest.raises(PermissionError, match="resolves to a loopback or private address"):
        await http_get(f"http://localhost:{text_server.port}/page")  # a name that resolves inside
    with pytest.raises(ValueError, match="http:// or https://"):
        await http_get("file:///etc/passwd")


async def test_http_get_reads_text_only_and_cuts_it(configure: Any, text_server: Any) -> None:
    configure(http_get_allow_private=True)
    out = await http_get(f"{text_server.url}/page")
    assert out.startswith("HTTP 200 text/plain") and out.endswith("[… cut at 200,000 bytes]")
    with pytest.raises(ValueError, match="not text"):
        await http_get(f"{text_server.url}/image")
