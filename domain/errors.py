"""Domain errors: each refusal has a stable machine-readable code and a human message.

The API maps the classes below to HTTP statuses in one place; the codes are part of the
wire contract and never change meaning.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every refusal. Nothing is stored when one is raised."""

    code: str = "domain_error"

    def __init__(self, code: str | None = None, message: str = "", **details: Any) -> None:
        if code is not None:
            self.code = code
        self.message = message or self.code.replace("_", " ")
        self.details = details
        super().__init__(f"{self.code}: {self.message}")

    def at_index(self, index: int) -> DomainError:
        """This refusal, naming the command of a batch it refused (`details["index"]`, from 0):
        a batch is stored whole or not at all, so the caller learns which one to fix."""
        self.message = f"event {index} of the batch: {self.message}"
        self.details = {"index": index, **self.details}
        self.args = (f"{self.code}: {self.message}",)
        return self


class RuleViolated(DomainError):
    """A business rule refuses the command (e.g. region_mismatch, not_accepted)."""


class InvalidInput(DomainError):
    """A value is malformed or out of range (e.g. invalid_licenses)."""

    code = "invalid_input"


class NotPermitted(DomainError):
    """The actor's role may not issue this command."""

    code = "role_not_permitted"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The command conflicts with what is stored (e.g. migration_open)."""

    code = "conflict"


class VersionConflict(Conflict):
    """An expected version was stale, or another writer saved first."""

    code = "version_conflict"
