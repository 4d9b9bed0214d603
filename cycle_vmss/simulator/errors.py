"""ARM errors the simulator backend raises; the HTTP layer renders them as ARM's envelope."""

from __future__ import annotations


class ArmError(Exception):
    """An ARM error response: HTTP `status`, `code`, `message`, extra response `headers`, and
    where Azure sends them a `target` (the parameter or resource at fault), `details` (list of
    {code, message[, target]}) and an `innererror`."""

    status = 500
    default_code = "InternalServerError"
    default_innererror: dict | None = None

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict | None = None, details: list | None = None,
                 target: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.details = list(details or [])
        self.target = target

    def body(self) -> dict:
        """The ARM error envelope `{"error": {"code", "message"[, "target", "details",
        "innererror"]}}`."""
        error: dict = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        if self.default_innererror:
            error["innererror"] = dict(self.default_innererror)
        return {"error": error}


class NotFound(ArmError):
    status = 404
    default_code = "NotFound"


class ResourceNotFound(NotFound):
    default_code = "ResourceNotFound"


class Conflict(ArmError):
    status = 409
    default_code = "Conflict"


class OperationNotAllowed(ArmError):
    """409 OperationNotAllowed (e.g. a protected instance)."""

    status = 409
    default_code = "OperationNotAllowed"


class Throttled(ArmError):
    """429 with Retry-After, as Compute's throttling answers: the operation group in
    `details[].target` and `innererror.internalErrorCode` (the body quoted in
    microsoft/AzureTRE#2777; the details as on Microsoft Learn's "Troubleshooting API
    throttling errors")."""

    status = 429
    default_code = "OperationNotAllowed"
    default_innererror = {"internalErrorCode": "TooManyRequestsReceived"}


class BadRequest(ArmError):
    status = 400
    default_code = "InvalidParameter"


class ServerError(ArmError):
    status = 500
    default_code = "InternalServerError"


class ScopeLocked(Conflict):
    """409 ScopeLocked: an ARM resource lock refuses a write on the resource (or its parent)."""

    default_code = "ScopeLocked"
