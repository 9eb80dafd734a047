"""Validation problems told in the gateway's own words: the field, then what is wrong.

pydantic's messages are written for developers (and ``str(ValidationError)`` adds a
documentation URL and echoes the input). A caller gets one short phrase per problem,
chosen here by the problem's type, for example ``top_k: must be at most 4294967295``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_PHRASES: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "datetime_type": "must be a date and time (ISO 8601)",
    "datetime_parsing": "must be a date and time (ISO 8601)",
    "datetime_from_date_parsing": "must be a date and time (ISO 8601)",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "string_pattern_mismatch": "has the wrong form",
}

_VALUE_ERROR_PREFIXES = ("Value error, ", "Assertion failed, ")


_WHERE = frozenset({"body", "query", "header", "path"})
_UNION_MEMBERS = frozenset({"none", "int", "float", "str", "bool"})


def _is_union_member(part: str) -> bool:
    # pydantic names the member of a union that failed (``float``, ``none``,
    # ``function-before[...]``, ``constrained-str``); a caller only needs the field.
    return part in _UNION_MEMBERS or "[" in part or part.startswith("constrained-")


def field_name(location: Sequence[Any]) -> str:
    """``texts.0`` for the first of ``texts``; ``body`` for the body as a whole."""
    parts = [
        str(part)
        for part in location
        if part not in _WHERE and not (isinstance(part, str) and _is_union_member(part))
    ]
    return ".".join(parts) or "body"


def phrase(problem: Mapping[str, Any]) -> str:
    """What is wrong, in a few words; never the input itself."""
    kind = str(problem.get("type", ""))
    if kind == "value_error":
        # Raised by our own validators with a message written for callers.
        message = str(problem.get("msg", ""))
        for prefix in _VALUE_ERROR_PREFIXES:
            message = message.removeprefix(prefix)
        return message or "is not valid"
    template = _PHRASES.get(kind)
    if template is None:
        return "is not valid"
    context = problem.get("ctx") or {}
    try:
        told = template.format(**{k: _shown(v) for k, v in context.items()})
    except (KeyError, IndexError):
        return template.split(" {", 1)[0]
    return told.replace(" 1 items", " 1 item").replace(" 1 characters", " 1 character")


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def validation_message(problems: Sequence[Mapping[str, Any]], prefix: str = "") -> str:
    """Every problem named by its field, for example ``texts: must have at least 1 items;
    top_k: must be at most 4294967295``. ``prefix`` names the enclosing field, when the
    problems belong to a value inside one (a key's ``limits``)."""
    named = []
    for problem in problems:
        if problem.get("type") == "json_invalid":
            return _json_invalid(problem)
        if problem.get("type") == "none_required" and len(problems) > 1:
            continue  # the null member of an optional field's union: the other one tells
        name = field_name(tuple(problem.get("loc", ())))
        if prefix:
            name = prefix if name == "body" else f"{prefix}.{name}"
        named.append(f"{name}: {phrase(problem)}")
    return "; ".join(dict.fromkeys(named)) or "the request is not valid"


def param_of(problems: Sequence[Mapping[str, Any]]) -> str | None:
    """The field the first problem names (``messages.0.content``), as the error's
    ``param``; None when the body as a whole is wrong (not JSON, not an object)."""
    for problem in problems:
        if problem.get("type") == "json_invalid":
            return None
        if problem.get("type") == "none_required" and len(problems) > 1:
            continue
        name = field_name(tuple(problem.get("loc", ())))
        return None if name == "body" else name
    return None


def _json_invalid(problem: Mapping[str, Any]) -> str:
    # pydantic says where the JSON breaks (or that it is not UTF-8): position only, no input.
    detail = str(problem.get("msg", "")).removeprefix("Invalid JSON: ")
    return f"the body is not valid JSON: {detail}" if detail else "the body is not valid JSON"
