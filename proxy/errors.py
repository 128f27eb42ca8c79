"""One exception tree for the whole proxy.

Every error carries the HTTP status a client should see, an Envoy-style response flag for the
access log, and the error *kind* that the dialect renderers map to the Anthropic or OpenAI
error type. Library exceptions (h11, h2, httptools, OSError) are mapped into this tree at the
module edge, so code above the codecs never sees them.
"""

from __future__ import annotations


class ProxyError(Exception):
    """Base of every error Junction raises on purpose."""

    status: int = 500
    flag: str = ""
    kind: str = "api_error"  # neutral error kind; dialects map it to their own type names
    retry_after_s: float | None = None  # sent as `retry-after` (whole seconds) when set

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ConfigError(ProxyError):
    """Bad configuration: the message names the offending key."""

    kind = "config_error"


class DownstreamProtocolError(ProxyError):
    """The client broke HTTP framing. `status` is the reply when nothing was sent yet."""

    status = 400
    flag = "DPE"
    kind = "invalid_request_error"


class RequestHeadersTooLargeError(DownstreamProtocolError):
    status = 431


class RequestBodyTooLargeError(DownstreamProtocolError):
    status = 413
    kind = "request_too_large"


class RequestTimeoutError(DownstreamProtocolError):
    status = 408
    kind = "timeout_error"


class BadRequestError(ProxyError):
    status = 400
    kind = "invalid_request_error"


class TranslationError(BadRequestError):
    """A request cannot be expressed faithfully in the provider's dialect.

    `field` names the offending request field (dotted path, e.g. ``messages.3.content.0``), so
    the client sees exactly what to change.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class UpstreamBadResponseError(ProxyError):
    """A provider answered something that cannot be translated (bad JSON, broken stream)."""

    status = 502
    flag = "UPE"
    kind = "api_error"


class NoRouteError(ProxyError):
    status = 404
    flag = "NR"
    kind = "not_found_error"


class UpstreamError(ProxyError):
    """Anything that went wrong talking to a provider.

    `request_bytes_sent` tells retry logic whether the request may have reached the provider:
    a request is retried on a fresh connection only when it is False.
    """

    status = 502
    flag = "UF"
    kind = "api_error"

    def __init__(
        self, message: str, *, status: int | None = None, request_bytes_sent: bool = False
    ) -> None:
        super().__init__(message, status=status)
        self.request_bytes_sent = request_bytes_sent


class UpstreamConnectError(UpstreamError):
    status = 502
    flag = "UF"


class UpstreamAuthError(UpstreamError):
    """The provider refused the credentials Junction holds for it (its 401 or 403). That is
    the operator's problem, not the client's: the client gets a 502 rather than an
    authentication error that would blame its own key (hardening.md F9)."""

    status = 502
    flag = "UF"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    flag = "UT"
    kind = "timeout_error"


class UpstreamResetError(UpstreamError):
    status = 502
    flag = "UC"


class UpstreamProtocolError(UpstreamError):
    status = 502
    flag = "UPE"


class UpstreamOverflowError(UpstreamError):
    """The pool's queue of waiting requests is full."""

    status = 503
    flag = "UO"
    kind = "overloaded_error"


class NoHealthyUpstreamError(ProxyError):
    """Every candidate that could serve the request is unhealthy (breaker open, ejected).
    `candidates` are those rejected for their health, so the reply can say when the first
    of them admits requests again (`retry_after_s`)."""

    status = 503
    flag = "UH"
    kind = "overloaded_error"

    def __init__(self, message: str, *, candidates: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.candidates = candidates


class DownstreamDisconnectError(ProxyError):
    status = 499
    flag = "DC"


class ShuttingDownError(ProxyError):
    status = 503
    flag = "SD"
    kind = "overloaded_error"
