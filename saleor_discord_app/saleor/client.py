"""GraphQL client for one store, authenticated with the app token (gql over httpx)."""

from __future__ import annotations

from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError, TransportServerError
from gql.transport.httpx import HTTPXTransport

from saleor_discord_app.saleor.webhooks import load_graphql


class SaleorUnauthorized(Exception):
    """Saleor answered 401: the app token is no longer valid (the app was uninstalled)."""


class SaleorError(Exception):
    """Saleor could not be reached or answered with errors."""


class SaleorClient:
    def __init__(self, saleor_api_url: str, app_token: str, *, timeout: float = 20.0) -> None:
        self.saleor_api_url = saleor_api_url

        def _reject_unauthorized(response: httpx.Response) -> None:
            # gql reports a 401 that carries a JSON error body as a query error; the status is what matters.
            if response.status_code == 401:
                raise SaleorUnauthorized(saleor_api_url)

        transport = HTTPXTransport(
            url=saleor_api_url,
            headers={"Authorization": f"Bearer {app_token}"},
            timeout=timeout,
            follow_redirects=False,
            event_hooks={"response": [_reject_unauthorized]},
        )
        self._client = Client(transport=transport, fetch_schema_from_transport=False)

    def execute(self, document_path: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a .graphql document from ``saleor/graphql/`` and return its ``data``."""
        request = GraphQLRequest(load_graphql(document_path), variable_values=variables)
        try:
            result: dict[str, Any] = self._client.execute(request)
        except TransportServerError as exc:
            if exc.code == 401:
                raise SaleorUnauthorized(self.saleor_api_url) from exc
            raise SaleorError(f"Saleor answered {exc.code}") from exc
        except TransportConnectionFailed as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, SaleorUnauthorized):
                raise cause from None
            raise SaleorError(f"Saleor unreachable: {exc}") from exc
        except SaleorUnauthorized:
            raise
        except TransportQueryError as exc:
            raise SaleorError(f"Saleor returned errors: {exc.errors}") from exc
        except httpx.HTTPError as exc:
            raise SaleorError(f"Saleor unreachable: {exc.__class__.__name__}") from exc
        return result

    def fetch_app_id(self) -> str | None:
        data = self.execute("queries/app_id.graphql")
        app = data.get("app") or {}
        app_id = app.get("id")
        return str(app_id) if app_id else None
