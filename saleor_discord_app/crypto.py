"""Encryption at rest and signed, expiring tokens derived from the one secret key."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import String, TypeDecorator
from sqlalchemy.engine import Dialect

from saleor_discord_app.config import get_settings


def _derive(purpose: str) -> bytes:
    secret = get_settings().secret_key.get_secret_value().encode()
    return hashlib.sha256(purpose.encode() + b"\x00" + secret).digest()


def fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive("encryption-at-rest")))


def signing_key(purpose: str) -> bytes:
    """A key for HMAC signatures (links, OAuth state), distinct per purpose."""
    return _derive(f"signing:{purpose}")


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:  # wrong secret key or tampered row
        raise ValueError("stored secret cannot be decrypted with the configured SDA_SECRET_KEY") from exc


class EncryptedString(TypeDecorator[str]):
    """A string column stored Fernet-encrypted; code only ever sees plaintext."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(value)


def sha256_hex(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()
