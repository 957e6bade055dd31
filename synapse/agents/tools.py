"""Python functions as tools: a JSON schema from type hints and the docstring, and a safe run.

    def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The current weather in a city.

        Args:
            city: the city's name, e.g. "Paris".
            unit: degrees Celsius or Fahrenheit.
        '''

`function_tool(weather)` gives a `FunctionTool` whose `.spec` is the canonical Tool the
model sees (description from the docstring's first paragraph, each parameter's from its
`Args:` line, types through pydantic as pydantic-ai and the openai-agents SDK do).
`run()` validates the arguments, calls the function (async, or sync in a thread), and
turns anything that goes wrong (bad arguments, an exception, the timeout) into an error
result the model reads: a tool never crashes a turn.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from ..errors import SynapseError
from ..types import Tool

__all__ = ["FunctionTool", "ToolError", "ToolOutcome", "function_tool", "parse_docstring"]

#: Largest tool result passed back to the model (characters); the rest is cut with a note.
MAX_RESULT_CHARS = 100_000
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ToolError(Exception):
    """Raised by a tool to answer the model with this message, as it is, as an error result
    (for refusals the model should read and act on, e.g. "that path is outside /memories")."""


@dataclass(slots=True)
class ToolOutcome:
    content: str
    is_error: bool = False


@dataclass(slots=True)
class FunctionTool:
    """A callable the model may call, with the schema it is shown."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    validator: Any = field(default=None, repr=False)  # a pydantic model class, or None
    #: A provider-defined tool type this implements (`Tool.native`, e.g. "memory_20250818").
    native: str | None = None

    @property
    def spec(self) -> Tool:
        return Tool(self.name, self.description, self.parameters, native=self.native)

    async def run(self, arguments: dict[str, Any], timeout: float | None = 60.0) -> ToolOutcome:
        """Call the tool; every failure is an error result, never an exception."""
        try:
            kwargs = self._validate(arguments)
        except Exception as exc:
            return ToolOutcome(f"invalid arguments for {self.name}: {_one_line(exc)}", True)
        try:
            if inspect.iscoroutinefunction(self.fn):
                value = await asyncio.wait_for(self.fn(**kwargs), timeout)
            else:
                value = await asyncio.wait_for(asyncio.to_thread(self.fn, **kwargs), timeout)
                if inspect.isawaitable(value):
                    value = await asyncio.wait_for(_await(value), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return ToolOutcome(f"{self.name} took longer than {timeout:g} s and was stopped", True)
        except asyncio.CancelledError:
            raise
        except ToolError as exc:
            return ToolOutcome(str(exc), True)
        except Exception as exc:
            return ToolOutcome(f"{self.name} failed: {type(exc).__name__}: {_one_line(exc)}", True)
        return ToolOutcome(_as_text(value))

    def _validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ValueError("the arguments must be a JSON object")
        if self.validator is None:
            return dict(arguments)
        model = self.validator.model_validate(arguments)
        return {name: getattr(model, name) for name in type(model).model_fields}


async def _await(value: Awaitable[Any]) -> Any:
    return await value


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:2000]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    else:
        import orjson

        try:
            text = orjson.dumps(value, default=str).decode()
        except TypeError:
            text = str(value)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[… cut: the result had {len(text):,} characters]"
    return text


_ARGS_HEADERS = ("args:", "arguments:", "parameters:", "params:")
_SECTION = re.compile(r"^(returns?|yields?|raises?|examples?|notes?|see also|attributes)\s*:\s*$", re.I)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google- or Sphinx-style docstring.

    The description is the first paragraph; parameters come from an `Args:` section
    (continuation lines indented deeper) or `:param name:` lines.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    desc: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    section = ""  # "" (description), "args", "other"
    arg_indent = -1
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        sphinx = _SPHINX.match(stripped)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if indent == 0 and stripped.lower() in _ARGS_HEADERS:
            section, current, arg_indent = "args", None, -1
            continue
        if indent == 0 and (_SECTION.match(stripped) or stripped.startswith(":")):
            section, current = "other", None
            continue
        if section == "":
            desc.append(line)
        elif section == "args" and stripped:
            if arg_indent < 0:
                arg_indent = indent
            m = _ARG_LINE.match(stripped)
            if indent <= arg_indent and m:
                current = m.group(1).lstrip("*")
                params[current] = m.group(2).strip()
            elif current:
                params[current] = (params[current] + " " + stripped).strip()
        elif section == "sphinx" and stripped and current:
            params[current] = (params[current] + " " + stripped).strip()
    first = "\n".join(desc).strip().split("\n\n")[0]
    return " ".join(first.split()), params


def _strip_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_titles(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def function_tool(fn: Callable[..., Any], name: str | None = None, description: str | None = None) -> FunctionTool:
    """A FunctionTool for a plain Python function (sync or async)."""
    if isinstance(fn, FunctionTool):
        return fn
    if not callable(fn):
        raise SynapseError(f"a tool must be a function, not {type(fn).__name__}")
    tool_name = name or str(getattr(fn, "__name__", ""))
    if not _NAME.match(tool_name):
        raise SynapseError(f"tool name {tool_name!r} must be 1-64 letters, digits, _ or - (pass name=...)")
    doc_desc, doc_params = parse_docstring(inspect.getdoc(fn))
    try:
        hints = get_type_hints(fn)
    except Exception:
        hints = {}
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    sig = inspect.signature(fn)
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise SynapseError(f"tool {tool_name}: positional-only parameter {pname!r} cannot be passed by name")
        annotation = hints.get(pname, Any)
        default = ... if param.default is param.empty else param.default
        fields[pname] = (annotation, Field(default, description=doc_params.get(pname) or None))
    model = create_model(f"{tool_name}_args", __config__=ConfigDict(extra="forbid"), **fields)
    schema = _strip_titles(model.model_json_schema())
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return FunctionTool(tool_name, description if description is not None else doc_desc, schema, fn, model)
