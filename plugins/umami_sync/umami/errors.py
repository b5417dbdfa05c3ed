"""The errors of the Umami client: every one is an :class:`UmamiError`, and none quotes a secret."""

from __future__ import annotations


class UmamiError(Exception):
    """Base class of the errors this client raises."""


class UmamiConfigError(UmamiError):
    """The Airflow connection does not follow the rule of :mod:`umami_sync.umami.auth`."""


class UmamiApiError(UmamiError):
    """Umami answered with a non-retryable error status."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"Umami {method} {path} -> HTTP {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[type[UmamiApiError], tuple[str, str, int, str]]:
        return type(self), (self.method, self.path, self.status, self.message)


class UmamiAuthError(UmamiApiError):
    """Umami answered 401 although the hook had just logged in: the user may not read this."""


class UmamiCredentialsError(UmamiAuthError):
    """Umami refused the connection's credentials (login or Cloud API key): retrying cannot help."""


class UmamiRequestError(UmamiError):
    """A request could not be sent or its answer not read, for a reason a retry does not change (requests refused
    a header, the URL is bad...). It keeps the scrubbed text of the error underneath, never that error itself."""


class UmamiRetryError(UmamiError):
    """A request kept failing (connection error, timeout, 429 or 5xx), or asked for a longer wait than allowed."""


class UmamiPagingError(UmamiError):
    """The list kept changing its ``count`` while being paged, beyond the restart limit."""


class UmamiActivityError(UmamiError):
    """A session's activity could not be read completely."""
