"""An e-mail check that gives email-validator's verdict at a fraction of its cost.

email-validator took a fifth of intake's CPU under a burst: for every address it checks
Unicode categories, runs UTS-46 remapping and length rules meant for internationalised
addresses. Nearly every address is plain ASCII (`learner.42@example.com`), and for those the
verdict is a few regular-expression checks. `email_address` decides such an address itself
and hands everything else, including everything it would refuse, to pydantic's own
`validate_email` (what `EmailStr` calls), so a refusal carries the same message and a value
that is accepted comes out normalised the same way. tests/unit/test_emails.py
proves both equal over generated addresses.
"""

import re
from typing import TYPE_CHECKING, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic.networks import validate_email
from pydantic_core import CoreSchema, core_schema

_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]"
# A dot-atom local part; host labels of at most 63 characters, the last one ending with a
# letter (email-validator's "within a valid top-level domain"); at least one dot.
_PLAIN = re.compile(
    rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z])"
)
# Local parts email-validator lower-cases (RFC 2142: postmaster, abuse…).
_CASELESS = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
# Domains email-validator refuses (`.test`, `.local`…), and their subdomains.
_SPECIAL_USE = tuple("." + d for d in SPECIAL_USE_DOMAIN_NAMES)


def email_address(value: str) -> str:
    """`value` as a normalised e-mail address (the domain lower-cased), or a
    PydanticCustomError with email-validator's reason, exactly as `EmailStr` gives them.

    Decided here: a dot-atom local part at a domain of ASCII letters, digits and single
    hyphens. A domain with `--` (Punycode `xn--`, which normalises to Unicode, and labels
    email-validator refuses), a special-use domain, a local part it lower-cases, an overlong
    address and anything else go to `validate_email`.
    """
    plain = _PLAIN.fullmatch(value)
    if (
        plain is None
        or len(value) > EMAIL_MAX_LENGTH
        or "--" in plain[2]
        or plain[1].lower() in _CASELESS
    ):
        return validate_email(value)[1]
    domain = plain[2].lower()
    if ("." + domain).endswith(_SPECIAL_USE):
        return validate_email(value)[1]
    return f"{plain[1]}@{domain}"


if TYPE_CHECKING:
    EmailAddress = str
else:

    class EmailAddress:
        """The pydantic type of `email_address`, built as `EmailStr` is (a string, then the
        check; a field's `max_length` applies to the result), documented as `format: email`."""

        @classmethod
        def __get_pydantic_core_schema__(
            cls, _source: Any, _handler: GetCoreSchemaHandler
        ) -> CoreSchema:
            return core_schema.no_info_after_validator_function(
                email_address, core_schema.str_schema()
            )

        @classmethod
        def __get_pydantic_json_schema__(
            cls, schema: CoreSchema, handler: GetJsonSchemaHandler
        ) -> JsonSchemaValue:
            field_schema = handler(schema)
            field_schema.update(type="string", format="email")
            return field_schema
