"""The function registry: `@workpool.function` and name resolution.

A worker runs only functions registered here, looked up by name; producers may pass either the
function object or its registered name, so a producer need not import worker code.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from workpool.errors import UnknownFunction

F = TypeVar("F", bound=Callable[..., Any])

# The attribute a registered callable carries with its name, so `resolve_name` is O(1).
NAME_ATTRIBUTE = "__workpool_name__"


@dataclass(frozen=True, slots=True)
class RegisteredFunction:
    """A callable registered under a name."""

    name: str
    func: Callable[..., Any]
    is_async: bool


_registry: dict[str, RegisteredFunction] = {}


@overload
def function(func: F, /) -> F: ...
@overload
def function(*, name: str | None = None) -> Callable[[F], F]: ...
def function(func: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register a function so workers may run it; use bare or as `@function(name="...")`.

    Without `name` it registers under "module.qualname". The function is returned unchanged.
    """
    if func is not None:
        return _register(func, None)

    def decorator(f: F) -> F:
        return _register(f, name)

    return decorator


def _register(func: F, name: str | None) -> F:
    if not callable(func):
        raise TypeError(f"@workpool.function needs a callable, got {type(func).__name__}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"function name must be a non-empty str, got {name!r}")
    registered_name = name or _default_name(func)
    existing = _registry.get(registered_name)
    if existing is not None and existing.func is not func and not _same_source(existing.func, func):
        raise ValueError(
            f"function name {registered_name!r} is already registered to {existing.func!r}"
        )
    _registry[registered_name] = RegisteredFunction(
        registered_name, func, inspect.iscoroutinefunction(func)
    )
    setattr(func, NAME_ATTRIBUTE, registered_name)
    return func


def _default_name(func: Callable[..., Any]) -> str:
    module = func.__module__
    if module == "__main__":
        # `python -m pkg.mod` runs as __main__ but workers import it as pkg.mod: use that name.
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
    return f"{module}.{func.__qualname__}"


def _same_source(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    # A module imported twice (e.g. reloaded) re-registers the same function: allow it.
    return getattr(a, "__module__", None) == getattr(b, "__module__", None) and getattr(
        a, "__qualname__", None
    ) == getattr(b, "__qualname__", None)


def resolve_name(func_or_name: Callable[..., Any] | str) -> str:
    """The registered name of a function object, or a name passed as a str.

    Raises:
        UnknownFunction: a callable that was never registered.
        TypeError: neither a callable nor a non-empty str.
    """
    if isinstance(func_or_name, str):
        if not func_or_name.strip():
            raise UnknownFunction("function name must not be empty")
        return func_or_name
    if callable(func_or_name):
        name = getattr(func_or_name, NAME_ATTRIBUTE, None)
        if name is None or name not in _registry:
            raise UnknownFunction(
                f"{func_or_name!r} is not registered; decorate it with @workpool.function"
            )
        return str(name)
    raise TypeError(
        f"expected a registered function or its name, got {type(func_or_name).__name__}"
    )


def lookup(name: str) -> RegisteredFunction:
    """The function registered under `name`.

    Raises:
        UnknownFunction: nothing is registered under `name`.
    """
    try:
        return _registry[name]
    except KeyError:
        raise UnknownFunction(
            f"unknown function {name!r}: not registered with this worker"
        ) from None


def registered_names() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_registry)
