"""One family of domain errors; views and commands turn them into clear messages."""

from __future__ import annotations


class GuichetError(Exception):
    """A refusal the user can understand and act on."""

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotFound(GuichetError):
    def __init__(self, message: str = "Introuvable.") -> None:
        super().__init__(message, code="not_found")


class InvalidTransition(GuichetError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_transition")


class InputRejected(GuichetError):
    """Input refused at the door (size, type, form errors); the raw input may still be kept."""

    def __init__(self, message: str, *, code: str = "rejected") -> None:
        super().__init__(message, code=code)
