"""OCI error bodies (distribution-spec "Error Codes"): the one line worth
showing from a registry's refusal."""

from __future__ import annotations

import orjson


def parse_oci_error(body: bytes) -> str | None:
    """``{"errors":[{"code","message","detail"}]}`` -> ``"CODE: message"``.

    The first error only (distribution-spec "Error Codes"); None when the
    body is not that shape. Never raises: it only decorates other errors.
    """
    try:
        doc = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        return None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict) or not isinstance(first.get("code"), str):
        return None
    code, message = first["code"], first.get("message")
    text = f"{code}: {message}" if isinstance(message, str) and message else code
    return " ".join(text.split())  # one line
