"""vlfast's public functions run eagerly inside a ``torch.compile``'d caller.

Dynamo would otherwise trace the host-side plan and table code through its caches (it does not finish), and
the results are defined by eager execution. ``vlfast/__init__.py`` wraps every public function with these.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

__all__ = ["eager", "eager_generator"]

Function = TypeVar("Function", bound=Callable[..., Any])


def eager(function: Function) -> Function:
    """``function``, opaque to the compiler: a compiled caller breaks its graph there and calls it eagerly."""
    return torch.compiler.disable(function)


@torch.compiler.disable
def _next_item(items: Iterator[Any]) -> Any:
    return next(items, None)


def eager_generator(function: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """A generator function whose body (started and resumed) runs eagerly; its items are never ``None``."""
    start = eager(function)

    @functools.wraps(function)
    def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
        items = start(*args, **kwargs)
        while (item := _next_item(items)) is not None:
            yield item

    return generator
