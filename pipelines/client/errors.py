"""Typed errors of the Whitespace client. Messages carry redacted URLs only, never a token."""

from __future__ import annotations


class WhitespaceError(Exception):
    """Base class of every error the client raises."""


class ConfigError(WhitespaceError):
    """A setting is missing or wrong; the message names the setting to change."""


class RefreshTokenRejected(WhitespaceError):
    """Sync Gateway refused the renewable token (expired, revoked or cleared by a later login)."""

    def __init__(self, status: int, reason: str, variable: str = "WHITESPACE_REFRESH_TOKEN") -> None:
        super().__init__(
            f"Sync Gateway rejected the renewable token (HTTP {status}: {reason!r}). It has expired or was "
            "cleared by a later login: open Whitespace, go to the User Profile panel, click 'Copy' next to "
            f"the refresh token and set it as {variable}."
        )
        self.status = status
        self.reason = reason


class InvalidUserId(WhitespaceError):
    """The API refused the ``UserID`` header (SUMO): missing for a SUMO login, or not this login's."""

    def __init__(self, user_id: str | None, url: str) -> None:
        if user_id:
            text = (
                f"The API refused UserID {user_id} for this login ({url}): it is not one of the MU ids this "
                "login acts for. Check WHITESPACE_USER_IDS, or unset it to discover them."
            )
        else:
            text = (
                f"The API needs a UserID for this login ({url}): it acts for several organisations (SUMO). "
                "Set WHITESPACE_USER_NAME (your name as Whitespace shows it) or WHITESPACE_USER_IDS (MU ids)."
            )
        super().__init__(text)
        self.user_id = user_id


class ApiError(WhitespaceError):
    """An HTTP error answer, or a body that is not the JSON it should be."""

    def __init__(self, message: str, status: int | None, url: str, excerpt: str = "", transient: bool = False):
        detail = f" Body starts: {excerpt!r}" if excerpt else ""
        super().__init__(f"{message} (HTTP {status if status is not None else '-'} from {url}).{detail}")
        self.status = status
        self.url = url
        self.excerpt = excerpt
        self.transient = transient


class AnswerTooLarge(ApiError):
    """An answer larger than ``WHITESPACE_MAX_ANSWER_MB``: that request fails, nothing of it is kept."""

    def __init__(self, limit: int, size: int, url: str) -> None:
        super().__init__(f"The answer is larger than WHITESPACE_MAX_ANSWER_MB allows ({limit / 1e6:,.0f} MB; "
                         f"{size / 1e6:,.0f} MB or more came): nothing of it was kept. Raise the setting if the "
                         "platform really sends that much", 200, url)


class NotAuthorised(ApiError):
    """``401 Invalid WSAUTH`` that a fresh token did not cure."""


class TransportError(ApiError):
    """The connection failed, was dropped or timed out, after every retry."""


def stops_everything(exc: BaseException) -> bool:
    """An error every later request of this login would meet again (a wrong setting, a rejected
    renewable token or UserID): a fan-out stops at it, and so does a sync. (A fresh token refused once
    is not: under many concurrent requests a short-lived token can die between renewal and use.)"""
    return isinstance(exc, ConfigError | RefreshTokenRejected | InvalidUserId)
