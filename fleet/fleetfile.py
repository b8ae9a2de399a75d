"""Load a fleet file (TOML or YAML) into a validated Fleet, naming every problem.

Every problem becomes one line naming the file, the site (by id, or by its position
``site #N`` when the id is missing or bad), the field path, the bad value and what is
expected, e.g.::

    deploy/x.toml: site "tx-odessa-01": battery.soc_min=1.2 must be within [0, 1]

All problems of a file are collected and raised together as one ``FleetFileError``.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from fleet.domain import Fleet, Service
from fleet.errors import FleetFileError
from fleet.types import (
    COUNTRY_PATTERN,
    NODE_PATTERN,
    RESOURCE_ID_PATTERN,
    SITE_ID_PATTERN,
    US_STATE_PATTERN,
)

logger = logging.getLogger(__name__)

TOML_SUFFIXES = frozenset({".toml"})
YAML_SUFFIXES = frozenset({".yaml", ".yml"})

_SITE_ID_RE = re.compile(SITE_ID_PATTERN)
_VALUE_MAX_CHARS = 60
_ASSIGNMENT_RE = re.compile(r"^[a-z_]+(\[\d+\])?=")

_PATTERN_RULES: dict[str, str] = {
    SITE_ID_PATTERN: (
        "must be 1-32 characters: lowercase letters, digits, '_' or '-', starting "
        "with a letter or digit (it is an MQTT topic level)"
    ),
    NODE_PATTERN: (
        "must be uppercase letters, digits, '_' or '-' (a pricing node as named in "
        "the price data, e.g. HB_HOUSTON)"
    ),
    RESOURCE_ID_PATTERN: (
        "must be uppercase letters, digits or '_' (a market resource id, e.g. "
        "ERCOT_ESR_ODESSA01)"
    ),
    COUNTRY_PATTERN: "must be a two-letter ISO country code such as US",
    US_STATE_PATTERN: "must be a two-letter US state code such as TX",
}
"""Plain-words rules for the id patterns (messages avoid regex syntax)."""

_TYPE_EXPECTATIONS: dict[str, str] = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "a date (YYYY-MM-DD) without a time",
    "list_type": "a list",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dict_type": "a table",
    "literal_error": "one of the allowed values",
}


def load_fleet(path: Path | str) -> Fleet:
    """Read and validate a fleet file; TOML or YAML is chosen by the extension.

    Parameters
    ----------
    path
        A ``.toml``, ``.yaml`` or ``.yml`` fleet file.

    Returns
    -------
    Fleet
        The validated fleet.

    Raises
    ------
    FleetFileError
        With one line per problem (file, site, field, bad value, expectation): an
        unreadable file, a syntax error (with its line number), a wrong type, a
        missing or unknown field, a value out of range, ``soc_min >= soc_max``, a
        duplicate site id, an undeclared POI group or an unknown service.
    """
    path = Path(path)
    data = read_fleet_data(path)
    return fleet_from_data(data, source=str(path))


def read_fleet_data(path: Path) -> dict[str, Any]:
    """Parse a fleet file into plain data, without validating the fleet.

    Raises
    ------
    FleetFileError
        When the file is missing, has an unknown extension, a syntax error, or is
        not a table at the top level.
    """
    suffix = path.suffix.lower()
    if suffix not in TOML_SUFFIXES | YAML_SUFFIXES:
        msg = f"{path}: unknown fleet file type {suffix or '(none)'!r}: expected .toml, .yaml or .yml"
        raise FleetFileError([msg])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FleetFileError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetFileError([f"{path}: cannot be read: {exc}"]) from None
    data: Any
    if suffix in TOML_SUFFIXES:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FleetFileError([f"{path}: TOML syntax error: {exc}"]) from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FleetFileError([f"{path}: {_yaml_error_line(exc)}"]) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        msg = f"{path}: the file is {kind}: expected a table with name and sites"
        raise FleetFileError([msg])
    return data


def fleet_from_data(data: dict[str, Any], *, source: str) -> Fleet:
    """Validate parsed fleet data; ``source`` names the file in the messages.

    Raises
    ------
    FleetFileError
        With one line per problem found anywhere in the data.
    """
    problems = [f"{source}: {line}" for line in _raw_fleet_problems(data)]
    try:
        fleet = Fleet.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if not error["loc"] and problems:
                continue  # fleet-level checks, already reported line by line above
            problems.extend(
                f"{source}: {line}" for line in _format_error(error, data) if line
            )
    else:
        if not problems:
            logger.debug("loaded fleet %s from %s", fleet.name, source)
            return fleet
    raise FleetFileError(_unique(problems))


def _unique(lines: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _yaml_error_line(exc: yaml.YAMLError) -> str:
    """Describe a YAML syntax error with its 1-based line number."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"YAML syntax error: {problem}"


def _raw_sites(data: dict[str, Any]) -> list[Any]:
    sites = data.get("sites")
    return sites if isinstance(sites, list) else []


def _site_label(data: dict[str, Any], index: int) -> str:
    """Name a site by its id when valid, else by its 1-based position."""
    sites = _raw_sites(data)
    if index < len(sites) and isinstance(sites[index], dict):
        site_id = sites[index].get("id")
        if isinstance(site_id, str) and _SITE_ID_RE.match(site_id):
            return f'site "{site_id}"'
    return f"site #{index + 1}"


def _raw_fleet_problems(data: dict[str, Any]) -> list[str]:
    """Find duplicate site ids and bad POI group references in the raw data."""
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, site in enumerate(_raw_sites(data)):
        if not isinstance(site, dict):
            continue
        site_id = site.get("id")
        if not isinstance(site_id, str):
            continue
        if site_id in first_index:
            problems.append(
                f'site "{site_id}": id="{site_id}" is a duplicate: site '
                f"#{first_index[site_id] + 1} and site #{index + 1} have it; "
                "site ids must be unique"
            )
        else:
            first_index[site_id] = index
    groups = data.get("poi_groups")
    declared: list[str] = []
    if isinstance(groups, list):
        declared = [
            g["name"]
            for g in groups
            if isinstance(g, dict) and isinstance(g.get("name"), str)
        ]
    for name in sorted({n for n in declared if declared.count(n) > 1}):
        problems.append(f'poi_groups: name="{name}" is declared more than once')
    used: set[str] = set()
    for index, site in enumerate(_raw_sites(data)):
        poi = site.get("poi") if isinstance(site, dict) else None
        group = poi.get("group") if isinstance(poi, dict) else None
        if not isinstance(group, str):
            continue
        used.add(group)
        if group not in declared:
            known = ", ".join(f'"{n}"' for n in sorted(set(declared))) or "none"
            problems.append(
                f'{_site_label(data, index)}: poi.group="{group}" is not declared in '
                f"poi_groups (declared: {known})"
            )
    problems.extend(
        f'poi_groups: "{name}" has no sites: no site has poi.group="{name}"'
        for name in sorted(set(declared) - used)
    )
    resource_owner: dict[str, str] = {}
    for index, site in enumerate(_raw_sites(data)):
        resource_id = site.get("resource_id") if isinstance(site, dict) else None
        if not isinstance(resource_id, str):
            continue
        label = _site_label(data, index)
        owner = resource_owner.setdefault(resource_id, label)
        if owner != label:
            problems.append(
                f'{label}: resource_id="{resource_id}" is also used by {owner}; '
                "resource ids must be unique"
            )
    return problems


def _show(value: Any) -> str:
    """Render a bad value compactly, as it would appear in the file."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _VALUE_MAX_CHARS:
        text = text[: _VALUE_MAX_CHARS - 1] + "…"
    return text


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _strip_optional(annotation: Any) -> Any:
    """Strip ``| None`` from an annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return annotation


def _plain(annotation: Any) -> Any:
    """Strip Optional and Annotated wrappers."""
    annotation = _strip_optional(annotation)
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = _strip_optional(typing.get_args(annotation)[0])
    return annotation


def _type_at(loc: Sequence[int | str]) -> Any:
    """Walk the Fleet model along ``loc``; return the type expected there (or None)."""
    current: Any = Fleet
    for part in loc:
        current = _plain(current)
        if isinstance(part, int):
            if typing.get_origin(current) is not list:
                return None
            current = typing.get_args(current)[0]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            return None
    return current


def _owner_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """Return the model owning the last key of ``loc`` (for unknown fields)."""
    owner = _plain(_type_at(loc[:-1]))
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        return owner
    return None


def _constraints_at(loc: Sequence[int | str]) -> list[Any]:
    """Collect the annotated-types constraints that apply at ``loc``."""
    found: list[Any] = []
    if loc and isinstance(loc[-1], str):
        owner = _owner_at(loc)
        field = owner.model_fields.get(loc[-1]) if owner else None
        if field is not None:
            found.extend(field.metadata)
    annotation = _strip_optional(_type_at(loc))
    while typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            found.extend(getattr(meta, "metadata", [meta]))
        annotation = _strip_optional(typing.get_args(annotation)[0])
    return found


def _bounds(loc: Sequence[int | str]) -> tuple[float | None, float | None, bool, bool]:
    """Return (low, high, low_inclusive, high_inclusive) of a numeric field."""
    low: float | None = None
    high: float | None = None
    low_incl = high_incl = True
    for meta in _constraints_at(loc):
        if isinstance(meta, annotated_types.Ge):
            low, low_incl = float(meta.ge), True  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Gt):
            low, low_incl = float(meta.gt), False  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Le):
            high, high_incl = float(meta.le), True  # type: ignore[arg-type]
        elif isinstance(meta, annotated_types.Lt):
            high, high_incl = float(meta.lt), False  # type: ignore[arg-type]
    return low, high, low_incl, high_incl


def _number(value: float) -> str:
    return f"{value:g}"


def _range_text(error: ErrorDetails, loc: Sequence[int | str]) -> str:
    """Say which range a numeric field must be in, using both bounds when it has them."""
    low, high, low_incl, high_incl = _bounds(loc)
    if low is not None and high is not None:
        left = "[" if low_incl else "("
        right = "]" if high_incl else ")"
        return f"must be within {left}{_number(low)}, {_number(high)}{right}"
    ctx = error.get("ctx") or {}
    words = {
        "greater_than_equal": ("ge", ">="),
        "greater_than": ("gt", ">"),
        "less_than_equal": ("le", "<="),
        "less_than": ("lt", "<"),
    }
    key, sign = words[error["type"]]
    bound = ctx.get(key)
    shown = _number(float(bound)) if isinstance(bound, int | float) else str(bound)
    return f"must be {sign} {shown}"


def _format_error(error: ErrorDetails, data: dict[str, Any]) -> list[str]:
    """Turn one pydantic error into message lines: ``<site>: <field>=<value> <why>``."""
    loc = list(error["loc"])
    prefix = ""
    if len(loc) >= 2 and loc[0] == "sites" and isinstance(loc[1], int):
        prefix = _site_label(data, loc[1]) + ": "
        field_loc = loc[2:]
    else:
        field_loc = loc
    path = _field_path(field_loc)
    kind = error["type"]
    value = error.get("input")
    shown = f"{path}={_show(value)}" if path else _show(value)
    if kind == "missing":
        return [f"{prefix}{path} is missing (required)"]
    if kind == "extra_forbidden":
        owner = _owner_at(loc)
        allowed = f" (allowed: {', '.join(owner.model_fields)})" if owner else ""
        return [f"{prefix}{path} is not a known field{allowed}"]
    if kind == "unknown_service":
        allowed = (error.get("ctx") or {}).get("allowed", "")
        return [f"{prefix}{shown} is not a known service (allowed: {allowed})"]
    if kind == "enum":
        expected = (error.get("ctx") or {}).get("expected", "")
        if _enum_at(loc) is Service:
            allowed = ", ".join(s.value for s in Service)
            return [f"{prefix}{shown} is not a known service (allowed: {allowed})"]
        enum = _enum_at(loc)
        if enum is not None:
            expected = ", ".join(str(member.value) for member in enum)
        return [f"{prefix}{shown} is not allowed (allowed: {expected})"]
    if kind in _TYPE_EXPECTATIONS:
        if kind == "literal_error":
            expected = (error.get("ctx") or {}).get("expected", "")
            return [f"{prefix}{shown} must be {expected}"]
        return [
            f"{prefix}{shown} has the wrong type: expected {_TYPE_EXPECTATIONS[kind]}"
        ]
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return [f"{prefix}{shown} {_range_text(error, loc)}"]
    if kind == "string_pattern_mismatch":
        pattern = str((error.get("ctx") or {}).get("pattern", ""))
        rule = _PATTERN_RULES.get(pattern, f"must match the pattern {pattern}")
        return [f"{prefix}{shown} {rule}"]
    if kind in {"too_short", "too_long"}:
        ctx = error.get("ctx") or {}
        if "min_length" in ctx and kind == "too_short":
            return [f"{prefix}{path} must have at least {ctx['min_length']} item(s)"]
        return [f"{prefix}{shown}: {error['msg']}"]
    if kind == "value_error":
        message = error["msg"].removeprefix("Value error, ")
        return [_join(prefix, path, line) for line in message.splitlines()]
    return [f"{prefix}{shown}: {error['msg']}"]


def _join(prefix: str, path: str, line: str) -> str:
    """Attach a validator's line to its field path (``battery.soc_min=…``)."""
    if not path:
        return f"{prefix}{line}"
    if _ASSIGNMENT_RE.match(line):
        return f"{prefix}{path}.{line}"
    return f"{prefix}{path}: {line}"


def _enum_at(field_loc: Sequence[int | str]) -> type[Enum] | None:
    """Return the enum type expected at ``field_loc``, when there is one."""
    candidate = _plain(_type_at(field_loc))
    if isinstance(candidate, type) and issubclass(candidate, Enum):
        return candidate
    return None
