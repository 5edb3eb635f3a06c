"""Phone numbers as careloop compares them: a caller's number, a learner's number in the LMS
and an SMS recipient must be the same string for the same phone."""

import re

_NOT_DIGITS = re.compile(r"\D")


def normal_phone(raw: str | None) -> str | None:
    """Digits with a leading `+` and country code where it can be told: a Chinese mobile
    number (11 digits starting with 1) gains +86, `0086…`/`86…` of that length become `+86…`.
    Anything else keeps its digits (and its `+`) as given."""
    if raw is None:
        return None
    digits = _NOT_DIGITS.sub("", raw)
    if not digits:
        return None
    if raw.lstrip().startswith("+"):
        return f"+{digits}"
    if digits.startswith("00"):
        return f"+{digits[2:]}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+86{digits}"
    if len(digits) == 13 and digits.startswith("861"):
        return f"+{digits}"
    return digits
