"""Genotype presets: TOML files validated into frozen config dataclasses.

A preset names a genotype ``kind`` and that kind's parameters. Each kind declares its
config dataclass (a subclass of :class:`PresetConfig`) whose fields are made with
:func:`option`; :func:`parse_config` checks a TOML table against it: unknown fields,
missing fields, wrong types, values outside ``choices`` or ``minimum``/``maximum`` all raise
a :class:`~evoemotion.errors.ConfigError` naming the file and the field.

Where a preset NAME is looked for, in order: an existing file path; then
``$EVOEMOTION_GENOTYPES/NAME.toml``; ``./genotypes/NAME.toml`` in the working directory;
``genotypes/NAME.toml`` in the project checkout.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from evoemotion.errors import ConfigError
from evoemotion.paths import PROJECT_ROOT
from evoemotion.render.ops import COLOR_SPACES, INPUTS

C = TypeVar("C", bound="PresetConfig")

#: Environment variable naming an extra folder of presets (searched first).
ENV_VAR = "EVOEMOTION_GENOTYPES"


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: Iterable[str] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """Declare a preset field.

    Args:
        default: the value when the preset omits the field; omit it to make the field
            required. Mutable defaults (dicts) are copied per instance.
        help: what the field means (shown in documentation and errors).
        choices: allowed strings (for a string, each item of a tuple, or each dict key).
        minimum: smallest allowed number (for a number, or each item / dict value).
        maximum: largest allowed number, likewise.

    Returns:
        A dataclass field carrying the checks in its metadata.
    """
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "minimum": minimum,
        "maximum": maximum,
    }
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PresetConfig:
    """Fields every genotype preset has."""

    kind: str = option(help="genotype kind: sims, cppn or cppn-neat")
    description: str = option("", help="one line saying what the preset is for")
    inputs: tuple[str, ...] = option(
        help="coordinates the genome reads (x, y, r, angle; bias for CPPNs)", choices=INPUTS
    )
    color_space: str = option(help="what the three outputs are: rgb or hsv", choices=COLOR_SPACES)
    output_range: tuple[float, float] = option(
        (-1.0, 1.0), help="output values mapped to 0 and 255 (clamped outside)"
    )

    def check(self) -> None:
        """Check relations between fields.

        Raises:
            ValueError: naming the field at fault.
        """
        if not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"field 'inputs': need distinct names, got {list(self.inputs)}")
        lo, hi = self.output_range
        if not lo < hi:
            raise ValueError(f"field 'output_range': need lo < hi, got {[lo, hi]}")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} " + "/".join(_describe(a) for a in args)
    if origin is dict:
        return f"a table of {_describe(typing.get_args(tp)[1])}"
    return {int: "integer", float: "number", bool: "true/false", str: "string"}[tp]


def _scalar(value: Any, tp: Any, meta: Mapping[str, Any], where: str) -> Any:
    """Check one scalar against its type and the field's checks; return it converted."""
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")
    choices = meta.get("choices")
    if tp is str and choices is not None and value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    low, high = meta.get("minimum"), meta.get("maximum")
    if tp in (int, float) and (
        (low is not None and value < low) or (high is not None and value > high)
    ):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{where}: {value!r} is outside {bounds}")
    return value


def _convert(value: Any, tp: Any, meta: Mapping[str, Any], where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if not isinstance(value, list) or len(items) != len(value):
            raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")
        return tuple(_scalar(v, t, meta, where) for v, t in zip(value, items, strict=True))
    if origin is dict:
        value_type = typing.get_args(tp)[1]
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")
        keys = {"choices": meta.get("choices")}
        return {
            _scalar(k, str, keys, where): _scalar(v, value_type, meta, f"{where}.{k}")
            for k, v in value.items()
        }
    return _scalar(value, tp, meta, where)


def parse_config(cls: type[C], table: Mapping[str, Any], source: str) -> C:
    """Validate a preset table into the config dataclass ``cls``.

    Args:
        cls: a :class:`PresetConfig` subclass.
        table: the preset's keys and values (as read from TOML or JSON).
        source: where the table came from (a file path), used in error messages.

    Returns:
        The validated, frozen config.

    Raises:
        ConfigError: naming ``source`` and the field, for an unknown field, a missing
            field, a wrong type, or a value outside the allowed ones.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown field '{unknown[0]}' (known fields: {', '.join(fields)})"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name not in table:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise ConfigError(
                    f"{source}: missing field '{name}' ({field.metadata.get('help', '')})"
                )
            continue
        values[name] = _convert(
            table[name], hints[name], field.metadata, f"{source}: field '{name}'"
        )
    config = cls(**values)
    try:
        config.check()
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from err
    return config


def config_to_dict(config: PresetConfig) -> dict[str, Any]:
    """A JSON-able dict of a config (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def search_dirs() -> list[Path]:
    """Folders searched for ``NAME.toml``, in order."""
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path.cwd() / "genotypes")
    dirs.append(PROJECT_ROOT / "genotypes")
    return list(dict.fromkeys(d.resolve() for d in dirs))  # each folder once, in order


def available_presets() -> list[str]:
    """Names of every preset found in :func:`search_dirs`."""
    names = {p.stem for d in search_dirs() if d.is_dir() for p in d.glob("*.toml")}
    return sorted(names)


def find_preset(name: str | os.PathLike[str]) -> Path:
    """Resolve a preset name or path to a file.

    Args:
        name: an existing ``.toml`` path, or a preset name such as ``"cppn"``.

    Returns:
        The preset file.

    Raises:
        ConfigError: listing where it looked and the available names.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return path
    tried = [path] if path.suffix == ".toml" or os.sep in str(name) else []
    if not tried:
        for folder in search_dirs():
            candidate = folder / f"{name}.toml"
            if candidate.is_file():
                return candidate
            tried.append(candidate)
    raise ConfigError(
        f"unknown genotype preset '{name}': looked at {', '.join(str(t) for t in tried)}; "
        f"available: {', '.join(available_presets()) or 'none'}"
    )


def read_preset(path: Path) -> dict[str, Any]:
    """Read a preset file's TOML table.

    Raises:
        ConfigError: naming the file if it cannot be read or parsed.
    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read genotype preset: {err}") from err
