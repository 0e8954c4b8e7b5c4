"""functions.py: the registry behind @workpool.function, and name resolution."""

from __future__ import annotations

import functools

import pytest

import workpool
from workpool import UnknownFunction
from workpool import functions as registry_module
from workpool.functions import lookup, registered_names, resolve_name


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Each test registers into a copy of the registry, so nothing leaks between tests."""
    monkeypatch.setattr(registry_module, "_registry", dict(registry_module._registry))


def test_bare_decorator_registers_module_and_qualname():
    # When a function is decorated bare
    @workpool.function
    def send_email(to: str) -> str:
        return to

    # Then it is registered as "module.qualname" and returned unchanged
    expected = f"{__name__}.test_bare_decorator_registers_module_and_qualname.<locals>.send_email"
    assert resolve_name(send_email) == expected
    assert lookup(expected).func is send_email
    assert send_email("x") == "x"
    assert expected in registered_names()


class Mailer:
    @staticmethod
    def deliver() -> None:
        return None


def test_qualname_includes_the_class():
    # When a static method is registered
    workpool.function(Mailer.deliver)
    # Then its name carries the class
    assert resolve_name(Mailer.deliver) == f"{__name__}.Mailer.deliver"


def test_name_form_registers_under_the_given_name():
    # When a function is decorated with name=
    @workpool.function(name="mail.send")
    def send(to: str) -> str:
        return to

    # Then it is found under that name, both ways
    assert resolve_name(send) == "mail.send"
    assert lookup("mail.send").func is send
    assert lookup("mail.send").name == "mail.send"


def test_resolve_name_passes_a_str_through():
    # A name need not be registered in the producer: workers may know it
    assert resolve_name("some.worker.only.function") == "some.worker.only.function"


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_resolve_name_refuses_a_blank_str(name):
    with pytest.raises(UnknownFunction, match="must not be empty"):
        resolve_name(name)


def test_resolve_name_refuses_an_unregistered_function():
    def stray() -> None:
        return None

    with pytest.raises(UnknownFunction) as excinfo:
        resolve_name(stray)
    assert "@workpool.function" in str(excinfo.value)


def test_resolve_name_refuses_other_objects():
    with pytest.raises(TypeError, match="registered function or its name"):
        resolve_name(42)  # type: ignore[arg-type]


def test_lookup_of_an_unknown_name():
    with pytest.raises(UnknownFunction) as excinfo:
        lookup("nope.nothing")
    assert isinstance(excinfo.value, LookupError)
    assert "'nope.nothing'" in str(excinfo.value)


def test_duplicate_name_for_a_different_function_is_refused():
    # Given a function registered as "dup"
    @workpool.function(name="dup")
    def first() -> int:
        return 1

    # When a different function is registered under the same name
    def second() -> int:
        return 2

    with pytest.raises(ValueError, match="'dup' is already registered"):
        workpool.function(name="dup")(second)
    # Then the first keeps the name, and the second stays unregistered
    assert lookup("dup").func is first
    with pytest.raises(UnknownFunction):
        resolve_name(second)


def test_registering_the_same_function_again_is_fine():
    # Given a registered function
    def twice() -> int:
        return 2

    workpool.function(twice)
    count = len(registered_names())
    # When it is registered again
    assert workpool.function(twice) is twice
    # Then nothing changes
    assert len(registered_names()) == count
    assert lookup(resolve_name(twice)).func is twice


def test_reimported_function_replaces_its_old_self():
    # Given two function objects with the same module and qualname (as after a module reload)
    def make() -> object:
        def job() -> int:
            return 1

        return job

    old, new = make(), make()
    workpool.function(name="reloaded")(old)
    # When the new one is registered under the same name
    workpool.function(name="reloaded")(new)
    # Then the registry holds the new one
    assert lookup("reloaded").func is new


def test_async_detection():
    # When a sync function, an async function and a partial of an async function are registered
    @workpool.function
    def sync_job() -> int:
        return 1

    @workpool.function
    async def async_job() -> int:
        return 1

    partial_job = workpool.function(name="partial.async")(functools.partial(async_job))
    # Then only the async ones are marked async
    assert lookup(resolve_name(sync_job)).is_async is False
    assert lookup(resolve_name(async_job)).is_async is True
    assert lookup(resolve_name(partial_job)).is_async is True


@pytest.mark.parametrize("name", ["", "  ", 5])
def test_bad_names_are_refused(name):
    def job() -> None:
        return None

    with pytest.raises(ValueError, match="function name must be a non-empty str"):
        workpool.function(name=name)(job)


def test_non_callable_is_refused():
    with pytest.raises(TypeError, match="needs a callable"):
        workpool.function("not a function")  # type: ignore[call-overload]


def test_registered_names_are_sorted():
    workpool.function(name="zz.last")(lambda: None)
    workpool.function(name="aa.first")(lambda: None)
    names = registered_names()
    assert names == sorted(names)
    assert {"aa.first", "zz.last"} <= set(names)
