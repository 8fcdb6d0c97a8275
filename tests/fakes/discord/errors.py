"""Discord's JSON error responses (developers/topics/opcodes-and-status-codes.mdx)."""

from __future__ import annotations

from typing import Any

import httpx

MESSAGES: dict[int, str] = {
    10003: "Unknown Channel",
    10004: "Unknown Guild",
    10006: "Unknown Invite",
    10007: "Unknown Member",
    10011: "Unknown Role",
    10013: "Unknown User",
    10062: "Unknown interaction",
    30001: "Maximum number of guilds reached (100)",
    40007: "The user is banned from this guild.",
    40060: "Interaction has already been acknowledged.",
    40333: "internal network error",
    50001: "Missing Access",
    50006: "Cannot send an empty message",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
    50025: "Invalid OAuth2 access token",
    50035: "Invalid Form Body",
}


class DiscordError(Exception):
    """Raised by handlers; becomes `{"code", "message", "errors"?}` with the given status."""

    def __init__(self, status: int, code: int, message: str | None = None, errors: Any = None) -> None:
        self.status = status
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        self.errors = errors
        super().__init__(f"{status} {code} {self.message}")

    def to_response(self) -> httpx.Response:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return httpx.Response(self.status, json=body)


class OAuthError(Exception):
    """RFC 6749 style error used by /oauth2/token (`{"error": ..., "error_description": ...}`)."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(f"{status} {error}")

    def to_response(self) -> httpx.Response:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return httpx.Response(self.status, json=body)


def unauthorized() -> DiscordError:
    return DiscordError(401, 0, "401: Unauthorized")


def not_found() -> DiscordError:
    return DiscordError(404, 0, "404: Not Found")


def method_not_allowed() -> DiscordError:
    return DiscordError(405, 0, "405: Method Not Allowed")


def form_error(field: str, code: str, message: str) -> DiscordError:
    return DiscordError(400, 50035, errors={field: {"_errors": [{"code": code, "message": message}]}})
