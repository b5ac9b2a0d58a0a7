"""Schemathesis hooks for `st run` (tests/api/test_schemathesis_cli.py loads them with
SCHEMATHESIS_HOOKS=<this file>).

Schemathesis' `positive_data_acceptance` expects a request the schema allows to be accepted
(2xx) or refused for reasons a schema cannot say (401, 403, 404, 409). This service also refuses
well-formed requests for two such reasons, which depend on what is stored (or on the clock),
not on the request's shape:

- 412 `version_conflict`: an `If-Match` of another version than the stored one (RFC 9110);
- 422 with a business rule's code: `region_mismatch` (the partner's region), `before_request`,
  `not_accepted`, `occurred_in_future`, ... (docs/api.md, "Errors").

`positive_data_acceptance_beyond_rules` is `positive_data_acceptance` that lets exactly these
codes through (`RULES`, `RELATIVE`); the run excludes the built-in check. Every other refusal
of a request the schema allows still fails it: 422 `validation_error` (pydantic), any other
domain code, 400, 413.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance


def _error(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# Business rules (domain RuleViolated), and refusals decided by the clock or the stored state.
RULES = {
    "auto_renew_off",
    "auto_renew_on",
    "before_request",
    "before_term_end",
    "credit_not_eligible",
    "dap_not_available",
    "delegated_admin_required",
    "idempotency_key_reused",
    "invalid_partner_region",
    "mixed_offer_families",
    "not_accepted",
    "not_multi_partner",
    "occurred_in_future",
    "offer_not_equivalent",
    "offer_retired",
    "reduction_window_closed",
    "region_mismatch",
    "tenant_guid_mismatch",
}
# Codes the domain gives both for a malformed field (naming it in `details.field`, which the
# schema must prevent) and, without a field, for a value judged against the stored state: a
# reduction above the licenses recorded, a renewal that does not extend the term, an access
# that ends before its grant, a correction that changes nothing.
RELATIVE = {"invalid_licenses", "invalid_term_end", "invalid_expires_at", "nothing_to_correct"}


def is_refused_by_state(response: Any) -> bool:
    """A refusal of a well-formed request, decided by what is stored (or by the clock)."""
    error = _error(response)
    code = error.get("error")
    if response.status_code == 412:
        return code == "version_conflict"
    if response.status_code != 422:
        return False
    details = error.get("details")
    names_a_field = isinstance(details, dict) and "field" in details
    return code in RULES or (code in RELATIVE and not names_a_field)


@schemathesis.check
def positive_data_acceptance_beyond_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """`positive_data_acceptance`, except for refusals by business rules and stale If-Match."""
    if is_refused_by_state(response):
        return None
    return positive_data_acceptance(ctx, response, case)
