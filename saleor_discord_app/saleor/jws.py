"""Saleor's signatures: RS256 detached JWS on webhooks, RS256 JWTs from the Dashboard.

The algorithm is pinned to RS256 and never read from the token header (that is how ``alg`` confusion
attacks such as HS256-with-the-public-key or ``none`` are shut out).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import httpx
import jwt
from jwt import PyJWKSet
from jwt.exceptions import PyJWKSetError, PyJWTError

ALGORITHMS = ["RS256"]


class SignatureError(Exception):
    """The signature or token does not verify; the message says why (never includes the token)."""


@lru_cache(maxsize=256)
def _keyset(canonical_jwks: str) -> PyJWKSet:
    """Parsed key sets, cached: building RSA keys from a JWKS costs more than verifying a signature."""
    return PyJWKSet.from_dict(json.loads(canonical_jwks))


def _key_for(token: str, jwks: dict[str, Any]) -> Any:
    try:
        header = jwt.get_unverified_header(token)
    except PyJWTError as exc:
        raise SignatureError(f"malformed signature: {exc}") from exc
    if header.get("alg") not in ALGORITHMS:
        raise SignatureError(f"algorithm {header.get('alg')!r} is not accepted")
    try:
        keyset = _keyset(json.dumps(jwks, sort_keys=True))
    except PyJWKSetError as exc:
        raise SignatureError("the store's key set has no usable key") from exc
    kid = header.get("kid")
    try:
        return keyset[kid].key if kid else keyset.keys[0].key
    except KeyError as exc:
        raise SignatureError(f"unknown key id {kid!r}") from exc


def verify_webhook_signature(signature: str, body: bytes, jwks: dict[str, Any]) -> None:
    """Verify Saleor's ``Saleor-Signature`` (``<header>..<signature>``) over the raw body bytes."""
    key = _key_for(signature, jwks)
    try:
        jwt.api_jws.decode_complete(signature, key=key, algorithms=ALGORITHMS, detached_payload=body)
    except PyJWTError as exc:
        raise SignatureError(f"signature does not verify: {exc}") from exc


def decode_dashboard_token(token: str, jwks: dict[str, Any], *, issuer: str) -> dict[str, Any]:
    """Verify a Dashboard/extension JWT (RS256, issuer = the store's API URL) and return its claims."""
    key = _key_for(token, jwks)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss"], "verify_aud": False},
        )
    except PyJWTError as exc:
        raise SignatureError(f"token rejected: {exc}") from exc
    return claims


def jwks_url(saleor_api_url: str) -> str:
    url = httpx.URL(saleor_api_url)
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}/.well-known/jwks.json"


def fetch_jwks(saleor_api_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """GET the store's JWKS; raises ``httpx.HTTPError`` or ``ValueError`` when it is not usable."""
    response = httpx.get(jwks_url(saleor_api_url), timeout=timeout, follow_redirects=False)
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("JWKS response has no 'keys' list")
    return data
