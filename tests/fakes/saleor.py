"""A fake Saleor store: signs webhooks and Dashboard tokens exactly as Saleor does, serves its JWKS and a
GraphQL endpoint over real HTTP on 127.0.0.1, and records what the app asked it."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from graphql import parse

GraphQLHandler = Callable[[str, dict[str, Any], str | None], dict[str, Any]]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_rsa_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    n, e = _b64(numbers.n), _b64(numbers.e)
    # RFC 7638 thumbprint, as Saleor computes its kid.
    thumbprint = hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode())
    kid = base64.urlsafe_b64encode(thumbprint.digest()).rstrip(b"=").decode()
    return {"kty": "RSA", "key_ops": ["verify"], "n": n, "e": e, "use": "sig", "kid": kid, "alg": "RS256"}


def sign_detached(body: bytes, key: RSAPrivateKey, kid: str) -> str:
    """Saleor's ``jws_encode``: RS256, detached, unencoded payload (RFC 7797)."""
    return jwt.api_jws.encode(
        body,
        key,
        algorithm="RS256",
        headers={"kid": kid, "b64": False, "crit": ["b64"], "typ": "JWT"},
        is_payload_detached=True,
    )


@dataclass
class FakeSaleor:
    app_id: str = "QXBwOjE="
    app_token: str = "saleor-app-token-0123456789abcd"
    key: RSAPrivateKey = field(default_factory=new_rsa_key)
    graphql_handler: GraphQLHandler | None = None
    jwks_available: bool = True
    graphql_requests: list[dict[str, Any]] = field(default_factory=list)
    jwks_fetches: int = 0
    port: int = 0

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.key)

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql/"

    def rotate_key(self) -> None:
        """An operator changed RSA_PRIVATE_KEY: new kid, no overlap (as in Saleor)."""
        self.key = new_rsa_key()

    def sign(self, body: bytes) -> str:
        return sign_detached(body, self.key, self.kid)

    def webhook_headers(self, event: str, body: bytes, *, signature: str | None = None) -> dict[str, str]:
        host = f"127.0.0.1:{self.port}"
        sig = self.sign(body) if signature is None else signature
        return {
            "Content-Type": "application/json",
            "User-Agent": "Saleor/3.23",
            "Saleor-Event": event.lower(),
            "X-Saleor-Event": event.lower(),
            "Saleor-Domain": host,
            "X-Saleor-Domain": host,
            "Saleor-Api-Url": self.api_url,
            "Saleor-Signature": sig,
            "X-Saleor-Signature": sig,
        }

    def dashboard_token(self, *, permissions: list[str], app: str | None = None, issuer: str | None = None,
                        expires_in: int = 300, key: RSAPrivateKey | None = None, **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "iat": now,
            "exp": now + expires_in,
            "iss": issuer or self.api_url,
            "owner": "saleor",
            "type": "thirdparty",
            "user_id": "VXNlcjox",
            "email": "staff@example.com",
            "is_staff": True,
            "app": app or self.app_id,
            "permissions": permissions,
            "user_permissions": permissions,
            **extra,
        }
        signing_key = key or self.key
        return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": public_jwk(signing_key)["kid"]})

    def _graphql(self, query: str, variables: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any]]:
        self.graphql_requests.append({"query": query, "variables": variables, "token": token})
        if token != self.app_token:
            return 401, {"errors": [{"message": "Invalid token."}]}
        document = parse(query)
        operation = next(iter(document.definitions))
        name = getattr(getattr(operation, "name", None), "value", None)
        if name == "AppId":
            return 200, {"data": {"app": {"id": self.app_id}}}
        if self.graphql_handler is not None:
            return 200, self.graphql_handler(name or "", variables, token)
        return 200, {"errors": [{"message": f"fake Saleor has no answer for {name}"}]}

    @contextmanager
    def serve(self) -> Iterator[FakeSaleor]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/.well-known/jwks.json":
                    fake.jwks_fetches += 1
                    if not fake.jwks_available:
                        self._send(503, {"error": "unavailable"})
                        return
                    self._send(200, fake.jwks)
                    return
                self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path != "/graphql/":
                    self._send(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                authorization = self.headers.get("Authorization", "")
                token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
                status, payload = fake._graphql(body.get("query", ""), body.get("variables") or {}, token)
                self._send(status, payload)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
