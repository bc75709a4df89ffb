"""What every commercial email carries, whatever its template says (CAN-SPAM, RFC 8058).

An email gets a visible way to opt out and the sender's postal address. A template may
place them itself (`{{ unsubscribe_url }}`, `{{ postal_address }}`); whatever it does not
place is added as a footer below the body. The HTML part is made from the text, so the
footer appears in both, the link clickable.
"""

from __future__ import annotations

from domain.templates import uses_variable

UNSUBSCRIBE_VARIABLE = "unsubscribe_url"
POSTAL_ADDRESS_VARIABLE = "postal_address"
EMAIL_VARIABLES = frozenset({UNSUBSCRIBE_VARIABLE, POSTAL_ADDRESS_VARIABLE})


def with_footer(body: str, template: str, *, unsubscribe_url: str, postal_address: str | None) -> str:
    """`body` (rendered from `template`) with the footer lines the template did not place."""
    lines = []
    if postal_address and not uses_variable(template, POSTAL_ADDRESS_VARIABLE):
        lines.append(" ".join(postal_address.split()))
    if not uses_variable(template, UNSUBSCRIBE_VARIABLE):
        lines.append(f"Unsubscribe: {unsubscribe_url}")
    if not lines:
        return body
    return body.rstrip("\n") + "\n\n--\n" + "\n".join(lines) + "\n"
