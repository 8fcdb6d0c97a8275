"""Signed, expiring tokens for links and OAuth state (HS256 JWTs keyed per purpose from the secret key),
and single-use enforcement through consumed nonces."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete

from saleor_discord_app.crypto import signing_key
from saleor_discord_app.models import UsedNonce
from saleor_discord_app.sqltypes import utcnow


class InvalidSignedToken(ValueError):
    """The token is forged, expired, for another purpose, or already used."""


def sign(purpose: str, data: dict[str, Any], *, expires_in: timedelta, single_use: bool = False) -> str:
    claims: dict[str, Any] = {"p": purpose, "d": data, "exp": utcnow() + expires_in}
    if single_use:
        claims["n"] = secrets.token_urlsafe(16)
    return jwt.encode(claims, signing_key(purpose), algorithm="HS256")


def unsign(purpose: str, token: str) -> dict[str, Any]:
    """Verify a token and return its data (does not consume it: see ``consume``)."""
    try:
        claims = jwt.decode(token, signing_key(purpose), algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise InvalidSignedToken("this link has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidSignedToken("this link is not valid") from exc
    if claims.get("p") != purpose or not isinstance(claims.get("d"), dict):
        raise InvalidSignedToken("this link is not valid")
    return {**claims["d"], "_nonce": claims.get("n"), "_exp": claims["exp"]}


def consume(session: Session, purpose: str, token: str) -> dict[str, Any]:
    """Verify a single-use token and mark it used; a second use raises ``InvalidSignedToken``."""
    data = unsign(purpose, token)
    nonce = data.get("_nonce")
    if not nonce:
        raise InvalidSignedToken("this link is not valid")
    try:
        with session.begin_nested():
            session.add(UsedNonce(nonce=nonce, expires_at=datetime.fromtimestamp(data["_exp"], tz=utcnow().tzinfo)))
    except IntegrityError as exc:
        raise InvalidSignedToken("this link was already used") from exc
    return data


def purge_used_nonces(session: Session) -> int:
    result = session.exec(delete(UsedNonce).where(col(UsedNonce.expires_at) < utcnow()))  # type: ignore[call-overload]
    return int(result.rowcount or 0)
