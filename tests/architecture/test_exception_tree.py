"""One exception tree: every exception class Bastion defines is declared in
``bastion.errors`` under ``BastionError``, and problem answers are declared as data."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import bastion
from bastion import errors
from bastion.errors import BastionError, InvalidValue, ProblemError


def _bastion_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(bastion.__path__, prefix="bastion.")
        # Entry points and Alembic's migration scripts run only under their runner.
        if not info.name.endswith("__main__") and ".migrations" not in info.name
    ]


def _exception_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in _bastion_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("bastion")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_exception_is_declared_in_errors_under_bastion_error() -> None:
    classes = _exception_classes()
    # The walk reaches the tree itself, so an empty result cannot pass silently.
    assert errors.Hidden in classes
    assert errors.UnsafeRedirect in classes
    elsewhere = sorted(
        f"{c.__module__}.{c.__qualname__}" for c in classes if c.__module__ != "bastion.errors"
    )
    assert elsewhere == []
    outside = sorted(c.__qualname__ for c in classes if not issubclass(c, BastionError))
    assert outside == []


def test_the_docstring_draws_every_class_of_the_tree() -> None:
    drawn = errors.__doc__ or ""
    for cls in _exception_classes():
        # A line of the drawing: the root, or a branch (├── / └──) naming the class.
        line = rf"^ {{4}}(?:[│ ]*[├└]── )?{cls.__name__}\b"
        assert re.search(line, drawn, re.MULTILINE), cls


def test_problem_kinds_declare_status_title_and_type_as_data() -> None:
    # RFC 9457 §3.1: status and title describe the problem type, so a type URI names one
    # (status, title) pair, and no call site overrides them.
    seen: dict[str, tuple[int, str]] = {}
    for cls in _exception_classes():
        if not issubclass(cls, ProblemError):
            continue
        assert 400 <= cls.status <= 599, cls
        signature = inspect.signature(cls.__init__)
        assert not {"status", "title", "type"} & set(signature.parameters), cls
        if cls.type != "about:blank":
            assert seen.setdefault(cls.type, (cls.status, cls.title)) == (cls.status, cls.title)


def test_invalid_values_are_value_errors_for_pydantic() -> None:
    # Raised inside a validator, a ValueError becomes a field error with its message.
    assert issubclass(InvalidValue, ValueError)
    assert issubclass(errors.WeakPassword, InvalidValue)
