"""Typed settings trees (plain dataclasses) read from TOML, overridden by command-line flags and printed back as TOML
with secrets masked: the one loader the station and the CSMS settings share.

A tree is a dataclass whose fields are str, int, float, bool, `Literal[...]` strings, lists of those, nested
dataclasses (TOML tables) and lists of dataclasses (arrays of tables), each optionally `| None`. Field metadata made
by `setting()` adds limits, secrets and file paths. Every refusal is a `SettingsError` naming where the value came
from (the file or the flag) and the key, e.g. `station.toml: [iso15118] secc_port: expected an integer, got "abc"`;
unknown keys, wrong types and non-finite numbers are refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

S = TypeVar("S")
KeyPath = tuple[str | int, ...]  # field names, and the 0-based index of an array-of-tables item
MASK = "***"


class SettingsError(ValueError):
    """A settings file or value refused: `source` is the file name or the flag, `key` the TOML key it concerns."""

    def __init__(self, source: str, key: str, problem: str, path: KeyPath | None = None) -> None:
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")
        self.source, self.key, self.problem, self.path = source, key, problem, path

    @classmethod
    def at(cls, path: KeyPath, problem: str) -> SettingsError:
        """A refusal found while using the settings (a file that will not load, ...): `Loaded.blame` names its
        source."""
        return cls("settings", key_name(path), problem, path)


def setting(default: Any = MISSING, *, default_factory: Callable[[], Any] | None = None, secret: bool = False,
            mask: Callable[[Any], Any] | None = None, path: bool = False, min: float | None = None,
            max: float | None = None, flag: str | None = None) -> Any:
    """A dataclass field with settings metadata: `secret` (printed as `***`; refusals never repeat it) or a `mask`
    function (e.g. a database URL's password), `path` (a file or folder: relative ones are taken from the settings
    file's folder, PEM text is refused), `min`/`max` limits for numbers, and the command-line `flag` that sets it."""
    meta = {"secret": secret or mask is not None, "mask": mask, "path": path, "min": min, "max": max, "flag": flag}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def key_name(path: KeyPath) -> str:
    """How a key is named in messages: `[iso15118] secc_port`, `[[evse]] #2 max_power_w`, `station_id`."""
    if not path:
        return ""
    tables: list[str | int] = list(path[:-1])
    last: str | int | None = path[-1]
    if isinstance(last, int):  # an array-of-tables item itself
        tables, last = list(path), None
    text, prefix, i = "", [], 0
    while i < len(tables):
        part = str(tables[i])
        nxt = tables[i + 1] if i + 1 < len(tables) else None
        if isinstance(nxt, int):
            text += f"[[{'.'.join([*prefix, part])}]] #{nxt + 1} "
            prefix, i = [], i + 2
        else:
            prefix.append(part)
            i += 1
    if prefix:
        text += f"[{'.'.join(prefix)}] "
    return (text + ("" if last is None else str(last))).strip()


@dataclass
class Loaded(Generic[S]):
    """A settings tree and where its values came from: the file, or the flag that overrode a key."""

    tree: S
    file: str | None = None  # the settings file's name (None: defaults and flags only)
    origins: dict[KeyPath, str] = field(default_factory=dict)  # key -> the flag that set it

    def source(self, path: KeyPath) -> str:
        """Who is to blame for a key: its flag, else the file, else the command line's defaults."""
        return self.origins.get(path) or self.file or "settings"

    def error(self, path: KeyPath, problem: str) -> SettingsError:
        """A refusal of the key at `path` (used by the trees' `check()` results)."""
        src = self.source(path)
        if src.startswith("-"):
            return SettingsError(src, "", problem)
        meta = _meta_at(type(self.tree), path)
        if self.file is None and meta.get("flag"):
            return SettingsError(meta["flag"], "", problem)
        return SettingsError(src, key_name(path), problem)

    def blame(self, error: SettingsError) -> SettingsError:
        """`error` (made with `SettingsError.at`) naming the file or flag its key came from."""
        return error if error.path is None else self.error(error.path, error.problem)

    def override(self, path: KeyPath, value: Any, flag: str) -> None:
        """Set the key at `path` from a command-line flag (type-checked like a file value)."""
        parent: Any = self.tree
        for part in path[:-1]:
            parent = parent[part] if isinstance(part, int) else getattr(parent, part)
        hints = _hints(type(parent))
        name = str(path[-1])
        meta = _field(type(parent), name).metadata
        setattr(parent, name, _convert(value, hints[name], meta, flag, "", None))
        self.origins[path] = flag

    def check(self) -> None:
        """Run every table's cross-field `check()` (yielding (key path below the table, problem)); the first problem
        is raised as a SettingsError naming its key and source."""
        for path, problem in _problems(self.tree, ()):
            raise self.error(path, problem)


def load(cls: type[S], file: str | Path | None = None) -> Loaded[S]:
    """The settings in `file` (TOML), or the defaults without one; SettingsError for a missing or bad file."""
    if file is None:
        return Loaded(cls())
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(path.name, "", f"cannot read: {e.strerror if isinstance(e, OSError) else e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(path.name, "", f"not valid TOML: {e}") from None
    return Loaded(from_dict(cls, data, path.name, path.resolve().parent), file=path.name)


def from_dict(cls: type[S], data: dict[str, Any], source: str, base: Path | None = None,
              where: KeyPath = ()) -> S:
    """Build a tree from a TOML table: unknown keys and wrong types refused; relative paths taken from `base`."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise SettingsError(source, key_name((*where, key)), f"unknown key (known here: {known})")
        values[key] = _convert(value, hints[key], names[key].metadata, source, key_name((*where, key)), base,
                               (*where, key))
    try:
        return cls(**values)
    except TypeError as e:  # a field without default left out
        raise SettingsError(source, key_name(where), f"incomplete table: {e}") from None


Flags = dict[str, tuple[KeyPath, Callable[[Any], Any] | None]]
"""A command's parameter name -> the key its flag overrides, and how the flag's value becomes the key's value."""


class CommandContext(Protocol):
    """What is read of a click/typer context: the parameters, their sources, the command's options."""

    params: dict[str, Any]
    command: Any

    def get_parameter_source(self, name: str) -> Any: ...


def flags_given(ctx: CommandContext) -> dict[str, tuple[str, Any]]:
    """The parameters given explicitly (on the command line or by their environment variable), as name -> (the
    flag's name, its value): only these override a settings file, never a flag's default."""
    names = {p.name: (p.opts[0] if p.opts else p.name) for p in ctx.command.params if p.name}
    given = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)  # click's ParameterSource (typer may ship its own copy of click)
        if getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT"):
            given[name] = (str(names.get(name, name)), value)
    return given


def apply_flags(loaded: Loaded[Any], ctx: CommandContext, flags: Flags) -> dict[str, tuple[str, Any]]:
    """Override the loaded settings with the flags given explicitly; returns those given (for the caller's own
    flags, e.g. ones that resize a list)."""
    given = flags_given(ctx)
    for name, (flag, value) in given.items():
        if name in flags:
            path, convert = flags[name]
            loaded.override(path, convert(value) if convert else value, flag)
    return given


def dumps(tree: Any, *, masked: bool = True) -> str:
    """The tree as TOML (loadable again with `load`); secrets as `***` unless `masked` is False; unset optional
    values as comments."""
    lines: list[str] = []
    _dump_table(tree, [], lines, masked)
    return "\n".join(lines).strip() + "\n"


def mask_url_password(url: Any) -> Any:
    """A URL with its password (user:PASSWORD@host) replaced by `***`."""
    if not isinstance(url, str):
        return url
    return re.sub(r"^([a-zA-Z][\w+.-]*://[^/@:]*):[^/@]*@", rf"\1:{MASK}@", url)


# ----- conversion -----

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _describe(value: Any) -> str:
    """A value's kind for a refusal that must not repeat it (secrets)."""
    if isinstance(value, bool):
        return "a boolean"
    for t, name in ((int, "an integer"), (float, "a number"), (str, "a string"), (list, "an array"),
                    (dict, "a table")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def _shown(value: Any, meta: Any) -> str:
    """`got ...` text of a refusal: the value itself (as JSON), or only its kind for a secret."""
    if meta.get("secret"):
        return _describe(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _convert(value: Any, hint: Any, meta: Any, source: str, key: str, base: Path | None,
             path: KeyPath = ()) -> Any:
    """Check and convert one value against its type hint and metadata."""
    def refuse(problem: str) -> SettingsError:
        return SettingsError(source, key, problem)

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported settings type {hint!r}")  # a programming error in a settings tree
        return None if value is None else _convert(value, args[0], meta, source, key, base, path)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool):
            raise refuse(f"expected one of {', '.join(json.dumps(c) for c in choices)}, got {_shown(value, meta)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise refuse(f"expected an array, got {_shown(value, meta)}")
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            return [v if dataclasses.is_dataclass(v) else
                    _table(v, item, source, (*path, i), base, key_name((*path, i))) for i, v in enumerate(value)]
        items = [_convert(v, item, meta, source, f"{key}[{i}]", base, path) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value):
            return value
        return _table(value, hint, source, path, base, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise refuse(f"expected true or false, got {_shown(value, meta)}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (hint is int and isinstance(value, float)):
            raise refuse(f"expected {_TYPE_NAMES[hint]}, got {_shown(value, meta)}")
        if not math.isfinite(value):
            raise refuse(f"expected a finite number, got {value}")
        if meta.get("min") is not None and value < meta["min"]:
            raise refuse(f"must be at least {meta['min']:g}, got {value:g}")
        if meta.get("max") is not None and value > meta["max"]:
            raise refuse(f"must be at most {meta['max']:g}, got {value:g}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise refuse(f"expected a string, got {_shown(value, meta)}")
        if meta.get("path"):
            if "-----BEGIN" in value:
                raise refuse("expected a file path, got PEM text (keep keys and certificates in files)")
            if not value.strip():
                raise refuse("expected a file path, got an empty string")
            if base is not None and not Path(value).expanduser().is_absolute():
                return str(base / value)
            return str(Path(value).expanduser()) if value.startswith("~") else value
        return value
    raise TypeError(f"unsupported settings type {hint!r}")  # a programming error in a settings tree


def _table(value: Any, cls: type, source: str, path: KeyPath, base: Path | None, key: str) -> Any:
    """A nested table (or an array-of-tables item) as its dataclass."""
    if not isinstance(value, dict):
        raise SettingsError(source, key, f"expected a table, got {_describe(value)}")
    return from_dict(cls, value, source, base, path)


def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a settings dataclass (cached)."""
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = typing.get_type_hints(cls)
    return cached


_HINTS: dict[type, dict[str, Any]] = {}


def _field(cls: type, name: str) -> dataclasses.Field[Any]:
    """The dataclass field `name` of `cls`."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == name:
            return f
    raise KeyError(name)


def _meta_at(cls: type, path: KeyPath) -> Any:
    """The metadata of the field at `path` below `cls` (empty for a table or unknown path)."""
    meta: Any = {}
    for part in path:
        if isinstance(part, int):
            continue
        try:
            f = _field(cls, part)
        except (KeyError, TypeError):
            return {}
        meta = f.metadata
        hint = _hints(cls)[part]
        args = typing.get_args(hint)
        cls = args[0] if typing.get_origin(hint) in (list, tuple) and args else hint
    return meta


@runtime_checkable
class CrossChecked(Protocol):
    """The optional hook of a settings table whose fields constrain each other."""

    def check(self) -> Iterator[tuple[KeyPath, str]]:
        """(key path inside the table, problem) for each rule broken."""
        ...


def _problems(tree: Any, where: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    """Cross-field problems of a tree and its sub-tables, with their full key paths."""
    if isinstance(tree, CrossChecked):
        for key, problem in tree.check():
            yield (*where, *key), problem
    for f in dataclasses.fields(tree):
        value = getattr(tree, f.name)
        if dataclasses.is_dataclass(value):
            yield from _problems(value, (*where, f.name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    yield from _problems(item, (*where, f.name, i))


# ----- TOML output -----

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name)


def _scalar(value: Any) -> str:
    """One TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007F")


def _masked(value: Any, meta: Any) -> Any:
    if value is None or value == "" or not meta.get("secret"):
        return value
    return meta["mask"](value) if meta.get("mask") else MASK


def _dump_table(tree: Any, where: list[str], lines: list[str], masked: bool) -> None:
    """The scalars of one table, then its sub-tables and arrays of tables."""
    nested: list[tuple[str, Any]] = []
    for f in dataclasses.fields(tree):
        value = getattr(tree, f.name)
        if dataclasses.is_dataclass(value) or (isinstance(value, list) and value
                                               and dataclasses.is_dataclass(value[0])):
            nested.append((f.name, value))
            continue
        if masked:
            value = _masked(value, f.metadata)
        if value is None:
            lines.append(f"# {_key(f.name)} is not set")
        else:
            lines.append(f"{_key(f.name)} = {_scalar(value)}")
    for name, value in nested:
        full = ".".join(_key(p) for p in [*where, name])
        if isinstance(value, list):
            for item in value:
                lines += ["", f"[[{full}]]"]
                _dump_table(item, [*where, name], lines, masked)
        else:
            lines += ["", f"[{full}]"]
            _dump_table(value, [*where, name], lines, masked)
