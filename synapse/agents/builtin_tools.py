"""The built-in tools, each small and safe: current_time, calculator, http_get.

`http_get` is off unless an agent lists it; it fetches text only, at most
`HTTP_MAX_BYTES`, within `HTTP_TIMEOUT` seconds, and refuses loopback, private,
link-local and other non-public addresses (checked on every resolved address, redirects
included, so DNS cannot point it inside) unless the `http_get_allow_private` setting
allows them.
"""

from __future__ import annotations

import ast
import ipaddress
import math
import operator
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from .tools import FunctionTool, function_tool

__all__ = ["BUILTIN_NAMES", "builtin_tools", "calculator", "current_time", "http_get"]

HTTP_MAX_BYTES = 200_000
HTTP_TIMEOUT = 15.0
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml", "application/javascript")


def current_time(timezone_name: str = "UTC") -> str:
    """The current date and time, ISO 8601.

    Args:
        timezone_name: an IANA time zone such as "Europe/Paris" (default UTC).
    """
    if timezone_name.upper() == "UTC":
        tz: Any = timezone.utc
    else:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            tz = ZoneInfo(timezone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone_name!r}: use an IANA name such as Europe/Paris") from None
    now = datetime.now(tz)
    return f"{now.isoformat(timespec='seconds')} ({now.strftime('%A')})"


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil,
    "log": math.log, "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "min": min, "max": max,
}
_CONSTS = {"pi": math.pi, "e": math.e}


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 1000 or abs(left) > 1e6 and right > 10):
            raise ValueError("that power is too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
    raise ValueError(f"not allowed in an arithmetic expression: {ast.unparse(node)[:60]!r}")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly as written, e.g. "(2 + 3) * 4 / 7" or "sqrt(2) ** 3".

    Args:
        expression: numbers with + - * / // % ** and parentheses; sqrt, abs, round, floor, ceil,
            log, log10, exp, sin, cos, tan, min, max; the constants pi and e.
    """
    if len(expression) > 500:
        raise ValueError("the expression is too long (at most 500 characters)")
    try:
        tree = ast.parse(expression.replace("^", "**").strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression[:80]!r}") from None
    try:
        value = _eval(tree)
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class _GuardedResolver:
    """Resolves like aiohttp does, but refuses a host with any non-public address."""

    def __init__(self) -> None:
        from aiohttp.resolver import ThreadedResolver

        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
        infos: list[Any] = await self._inner.resolve(host, port, family)  # type: ignore[arg-type]
        for info in infos:
            if not _public(info["host"]):
                raise PermissionError(
                    f"{host} resolves to a loopback or private address ({info['host']}); "
                    "http_get only reaches public addresses unless the http_get_allow_private setting is true"
                )
        return infos

    async def close(self) -> None:
        await self._inner.close()


async def http_get(url: str) -> str:
    """Fetch a web page or text file over HTTP(S) and return its text (the start of it, if long).

    Args:
        url: an http:// or https:// URL.
    """
    from urllib.parse import urlsplit

    import aiohttp

    from .. import settings as settings_mod

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("give an http:// or https:// URL")
    allow_private = settings_mod.load().get_bool("http_get_allow_private")
    if not allow_private:
        try:
            if not _public(parts.hostname):
                raise PermissionError(
                    f"{parts.hostname} is a loopback or private address; http_get only reaches public "
                    "addresses unless the http_get_allow_private setting is true"
                )
        except ValueError:
            pass  # a name: checked when it is resolved
    resolver: Any = None if allow_private else _GuardedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, force_close=True)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    headers = {"User-Agent": "Synapse-http_get/0.1", "Accept": "text/*, application/json;q=0.9"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
        try:
            async with session.get(url, headers=headers, max_redirects=5) as resp:
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if ctype and not ctype.startswith(_TEXT_TYPES):
                    raise ValueError(f"{url} is {ctype}, not text: http_get reads only text")
                body = b""
                while len(body) <= HTTP_MAX_BYTES:
                    chunk = await resp.content.read(HTTP_MAX_BYTES + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
                encoding = resp.charset or "utf-8"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PermissionError):  # our resolver's refusal, unwrapped
                raise exc.os_error from None
            raise
    try:
        text = body[:HTTP_MAX_BYTES].decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        text = body[:HTTP_MAX_BYTES].decode("utf-8", errors="replace")
    note = f"\n[… cut at {HTTP_MAX_BYTES:,} bytes]" if len(body) > HTTP_MAX_BYTES else ""
    return f"HTTP {resp.status} {ctype or 'unknown type'}\n\n{text}{note}"


_BUILDERS: dict[str, Callable[..., Any]] = {"current_time": current_time, "calculator": calculator, "http_get": http_get}
BUILTIN_NAMES: tuple[str, ...] = tuple(_BUILDERS)
_cache: dict[str, FunctionTool] = {}


def builtin_tools() -> Mapping[str, FunctionTool]:
    """Every built-in tool by name (built once)."""
    if not _cache:
        for name, fn in _BUILDERS.items():
            _cache[name] = function_tool(fn, name)
    return _cache
