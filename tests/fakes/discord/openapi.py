"""Validate requests sent to the fake against Discord's published OpenAPI spec.

The spec (discord/discord-api-spec, MIT) is vendored next to this file so a fresh clone works;
`SDA_DISCORD_OPENAPI` points at another copy. `/oauth2/token`, `/oauth2/token/revoke` and
`/oauth2/authorize` are not spec paths, so they are checked by a small allow-list instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from jsonschema import Draft202012Validator

SPEC_ENV_VAR = "SDA_DISCORD_OPENAPI"
VENDORED_SPEC = Path(__file__).resolve().parent / "openapi.json"
API_PREFIX = "/api/v10"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
OTHER_VERSION = re.compile(r"^/v\d+(/|$)")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class OpenAPIViolation(AssertionError):
    """A request that real Discord would not recognise (unknown route, bad body or query)."""

    def __init__(self, message: str, *, kind: str, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.kind = kind  # "unknown_path" | "method_not_allowed" | "bad_body" | "bad_query" | "bad_path_param"
        self.method = method
        self.path = path


def default_spec_path() -> Path:
    override = os.environ.get(SPEC_ENV_VAR)
    return Path(override) if override else VENDORED_SPEC


@lru_cache(maxsize=4)
def _load_spec(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    return spec


@dataclass(frozen=True)
class RouteMatch:
    template: str  # e.g. "/guilds/{guild_id}/members/{user_id}"
    params: dict[str, str]


@dataclass
class _Operation:
    method: str
    template: str
    query: dict[str, Callable[[str], list[str]]]  # name -> validator returning error messages
    body_required: bool
    json_validator: Draft202012Validator | None
    content_types: frozenset[str]


@dataclass
class _PathEntry:
    template: str
    regex: re.Pattern[str]
    literal_segments: int
    param_validators: dict[str, Draft202012Validator]
    operations: dict[str, _Operation] = field(default_factory=dict)


def template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


def api_relative_path(path: str) -> str | None:
    """Path below `/api/v10` (or unversioned `/api`, which Discord also serves); None if outside it."""
    for prefix in (API_PREFIX, "/api"):
        if path == prefix or path.startswith(prefix + "/"):
            rest = path[len(prefix) :] or "/"
            return None if OTHER_VERSION.match(rest) else rest
    return None


class DiscordOpenAPIValidator:
    """Checks path, method, path params, query params and JSON body of an `httpx.Request`."""

    # Routes the spec omits; value = checker of the form-encoded body / query.
    ALLOWED_EXTRA_ROUTES: dict[tuple[str, str], str] = {
        ("POST", "/oauth2/token"): "token",
        ("POST", "/oauth2/token/revoke"): "revoke",
        ("GET", "/oauth2/authorize"): "authorize",
    }

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        spec_path = Path(path) if path is not None else default_spec_path()
        self.spec = _load_spec(str(spec_path))
        self._components = self.spec.get("components", {})
        self._entries = [self._build_entry(t, item) for t, item in self.spec["paths"].items()]
        # Most literal template wins (`/users/@me` over `/users/{user_id}`).
        self._entries.sort(key=lambda e: -e.literal_segments)
        self._by_segments: dict[int, list[_PathEntry]] = {}
        for entry in self._entries:
            self._by_segments.setdefault(entry.template.count("/"), []).append(entry)

    @classmethod
    def shared(cls, path: str | os.PathLike[str] | None = None) -> DiscordOpenAPIValidator:
        """One validator per spec file per process; building one compiles ~370 operations."""
        return _shared_validator(str(Path(path) if path is not None else default_spec_path()))

    # -- construction ---------------------------------------------------------------------------

    def _compile(self, schema: dict[str, Any]) -> Draft202012Validator:
        # Embedding `components` lets the spec's local "#/components/..." refs resolve unchanged.
        return Draft202012Validator({**schema, "components": self._components})

    def _resolve(self, obj: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in obj:
            node: Any = self.spec
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def _query_checker(self, schema: dict[str, Any]) -> Callable[[str], list[str]]:
        validator = self._compile(schema)
        resolved = self._resolve(schema)
        declared = resolved.get("type")
        types = declared if isinstance(declared, list) else [declared]

        def check(raw: str) -> list[str]:
            value: Any = raw
            if "integer" in types:
                try:
                    value = int(raw)
                except ValueError:
                    return [f"{raw!r} is not an integer"]
            elif "number" in types:
                try:
                    value = float(raw)
                except ValueError:
                    return [f"{raw!r} is not a number"]
            elif "boolean" in types:
                if raw.lower() not in ("true", "false", "1", "0"):
                    return [f"{raw!r} is not a boolean"]
                value = raw.lower() in ("true", "1")
            elif "array" in types:
                value = raw.split(",")
            return [e.message for e in validator.iter_errors(value)]

        return check

    def _build_entry(self, template: str, item: dict[str, Any]) -> _PathEntry:
        path_params: dict[str, Draft202012Validator] = {}
        for prm in item.get("parameters", []):
            prm = self._resolve(prm)
            if prm.get("in") == "path":
                path_params[prm["name"]] = self._compile(prm.get("schema", {}))
        entry = _PathEntry(
            template=template,
            regex=template_regex(template),
            literal_segments=sum(1 for s in template.split("/") if s and not s.startswith("{")),
            param_validators=path_params,
        )
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            query: dict[str, Callable[[str], list[str]]] = {}
            for prm in op.get("parameters", []):
                prm = self._resolve(prm)
                if prm.get("in") == "query":
                    query[prm["name"]] = self._query_checker(prm.get("schema", {}))
                elif prm.get("in") == "path":
                    entry.param_validators[prm["name"]] = self._compile(prm.get("schema", {}))
            body = op.get("requestBody")
            content = self._resolve(body).get("content", {}) if body else {}
            json_schema = content.get("application/json", {}).get("schema")
            entry.operations[method.upper()] = _Operation(
                method=method.upper(),
                template=template,
                query=query,
                body_required=bool(body and self._resolve(body).get("required")),
                json_validator=self._compile(json_schema) if json_schema is not None else None,
                content_types=frozenset(content),
            )
        return entry

    # -- matching -------------------------------------------------------------------------------

    def match_path(self, api_path: str) -> tuple[_PathEntry, dict[str, str]] | None:
        for entry in self._by_segments.get(api_path.count("/"), []):
            m = entry.regex.match(api_path)
            if m:
                return entry, m.groupdict()
        return None

    def match(self, method: str, api_path: str) -> RouteMatch | None:
        found = self.match_path(api_path)
        if found is None or method.upper() not in found[0].operations:
            return None
        return RouteMatch(found[0].template, found[1])

    # -- validation -----------------------------------------------------------------------------

    def validate(self, request: httpx.Request) -> RouteMatch:
        """Raise `OpenAPIViolation` unless real Discord would accept this request's shape."""
        method = request.method.upper()
        raw_path = request.url.path
        where = f"{method} {raw_path}"
        api_path = api_relative_path(raw_path)
        if api_path is None:
            if (method, raw_path) == ("GET", "/oauth2/authorize"):
                self._check_extra("authorize", request, where)
                return RouteMatch("/oauth2/authorize", {})
            raise OpenAPIViolation(
                f"{where}: not under {API_PREFIX}; Discord's API lives at https://discord.com{API_PREFIX}",
                kind="unknown_path",
                method=method,
                path=raw_path,
            )
        extra = self.ALLOWED_EXTRA_ROUTES.get((method, api_path))
        if extra is not None:
            self._check_extra(extra, request, where)
            return RouteMatch(api_path, {})

        found = self.match_path(api_path)
        if found is None:
            raise OpenAPIViolation(
                f"{where}: no path template in Discord's OpenAPI spec matches {api_path!r}",
                kind="unknown_path",
                method=method,
                path=raw_path,
            )
        entry, params = found
        op = entry.operations.get(method)
        if op is None:
            raise OpenAPIViolation(
                f"{where}: {entry.template} exists but has no {method} operation "
                f"(allowed: {', '.join(sorted(entry.operations))})",
                kind="method_not_allowed",
                method=method,
                path=raw_path,
            )
        for name, value in params.items():
            validator = entry.param_validators.get(name)
            errors = [e.message for e in validator.iter_errors(value)] if validator else []
            if errors:
                raise OpenAPIViolation(
                    f"{where}: path parameter {name}={value!r} invalid: {'; '.join(errors)}",
                    kind="bad_path_param",
                    method=method,
                    path=raw_path,
                )
        for name, value in request.url.params.multi_items():
            checker = op.query.get(name)
            if checker is None:
                raise OpenAPIViolation(
                    f"{where}: unknown query parameter {name!r} for {entry.template} "
                    f"(known: {', '.join(sorted(op.query)) or 'none'})",
                    kind="bad_query",
                    method=method,
                    path=raw_path,
                )
            errors = checker(value)
            if errors:
                raise OpenAPIViolation(
                    f"{where}: query parameter {name}={value!r} invalid: {'; '.join(errors)}",
                    kind="bad_query",
                    method=method,
                    path=raw_path,
                )
        self._check_body(op, request, where, raw_path)
        return RouteMatch(entry.template, params)

    def _check_body(self, op: _Operation, request: httpx.Request, where: str, raw_path: str) -> None:
        body = request.content
        if not body:
            if op.body_required:
                raise OpenAPIViolation(
                    f"{where}: request body is required for {op.template}",
                    kind="bad_body",
                    method=op.method,
                    path=raw_path,
                )
            return
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not op.content_types:
            # Discord ignores bodies on body-less operations; accepting them keeps the fake lenient.
            return
        if content_type not in op.content_types:
            raise OpenAPIViolation(
                f"{where}: content type {content_type or '(none)'!r} not accepted "
                f"(spec allows: {', '.join(sorted(op.content_types))})",
                kind="bad_body",
                method=op.method,
                path=raw_path,
            )
        if content_type != "application/json" or op.json_validator is None:
            return
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise OpenAPIViolation(
                f"{where}: body is not valid JSON: {exc}", kind="bad_body", method=op.method, path=raw_path
            ) from exc
        errors = sorted(op.json_validator.iter_errors(payload), key=lambda e: list(e.path))
        if errors:
            details = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5])
            raise OpenAPIViolation(
                f"{where}: body does not match the {op.template} request schema: {details}",
                kind="bad_body",
                method=op.method,
                path=raw_path,
            )

    def _check_extra(self, kind: str, request: httpx.Request, where: str) -> None:
        def fail(msg: str) -> OpenAPIViolation:
            return OpenAPIViolation(f"{where}: {msg}", kind="bad_body", method=request.method, path=request.url.path)

        if kind == "authorize":
            params = request.url.params
            if "client_id" not in params:
                raise fail("client_id query parameter is required")
            return
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_CONTENT_TYPE:
            raise fail(f"body must be {FORM_CONTENT_TYPE} (JSON is not permitted), got {content_type!r}")
        form = dict(parse_qsl(request.content.decode("utf-8", "replace"), keep_blank_values=True))
        if kind == "revoke":
            if not form.get("token"):
                raise fail("form field 'token' is required")
            return
        grant = form.get("grant_type")
        required = {
            "authorization_code": ("code",),
            "refresh_token": ("refresh_token",),
            "client_credentials": (),
        }.get(grant or "")
        if required is None:
            raise fail(f"grant_type must be authorization_code, refresh_token or client_credentials, got {grant!r}")
        missing = [name for name in required if not form.get(name)]
        if missing:
            raise fail(f"form field(s) {', '.join(missing)} required for grant_type={grant}")


@lru_cache(maxsize=4)
def _shared_validator(path: str) -> DiscordOpenAPIValidator:
    return DiscordOpenAPIValidator(path)
