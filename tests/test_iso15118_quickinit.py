"""quick_init: a frozen dataclass with the quick __init__ is the same object as with the generated one."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from v2gstack.iso15118.model import CurrentDemand, DCEVStatus
from v2gstack.iso15118.msglog import MessageRecord
from v2gstack.iso15118.quickinit import quick_init


@dataclass(frozen=True)
class Plain:
    """The reference: dataclass's own __init__."""

    d: int  # a field named as a local of a naive generated __init__
    self_: str = "x"
    items: list[int] = field(default_factory=list)
    k: float = field(default=1.5, kw_only=True)


@quick_init
@dataclass(frozen=True)
class Quick:
    """The same fields with quick_init."""

    d: int
    self_: str = "x"
    items: list[int] = field(default_factory=list)
    k: float = field(default=1.5, kw_only=True)


@pytest.mark.parametrize(("args", "kwargs"), [((1,), {}), ((2, "y"), {}), ((3, "z", [4]), {"k": 2.0}),
                                              ((), {"d": 5, "items": [1, 2]})])
def test_same_fields_defaults_and_factories(args: tuple, kwargs: dict) -> None:
    """Every way of calling gives the same field values as the generated __init__."""
    assert dataclasses.astuple(Quick(*args, **kwargs)) == dataclasses.astuple(Plain(*args, **kwargs))


def test_factory_gives_a_new_object_each_time_and_the_rest_holds() -> None:
    """A default factory is called per instance; equality, hash, repr, pickling and frozenness are the dataclass's."""
    a, b = Quick(1), Quick(1)
    assert a.items == [] and a.items is not b.items
    assert a == b and repr(a) == "Quick(d=1, self_='x', items=[], k=1.5)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.d = 2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(a)) == a
    assert hash(DCEVStatus(True, "NO_ERROR", 50)) == hash(DCEVStatus(True, "NO_ERROR", 50))
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, "x", [], 2.0)  # type: ignore[misc]  # k is keyword-only


def test_the_records_of_a_charge_loop() -> None:
    """The message record and a model record keep their fields and defaults."""
    r = MessageRecord("EVCC", "tx", 1.0, "iso2", {}, b"\x80")
    assert (r.peer, r.seq, r.mono) == ("", 0, None)
    cd = CurrentDemand(DCEVStatus(True, "NO_ERROR", 50), 10.0, 400.0)
    assert cd == CurrentDemand(DCEVStatus(True, "NO_ERROR", 50), 10.0, 400.0)


def test_refuses_what_it_cannot_copy() -> None:
    """Not frozen, slots or __post_init__: refused."""
    with pytest.raises(TypeError):
        quick_init(dataclass(type("Loose", (), {"__annotations__": {"a": int}})))
    with pytest.raises(TypeError):
        quick_init(dataclass(frozen=True, slots=True)(type("Slotted", (), {"__annotations__": {"a": int}})))

    @dataclass(frozen=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError):
        quick_init(Post)
