"""Every GraphQL document of the package validates against Saleor 3.23.28's schema."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema, parse, validate

from saleor_discord_app.saleor.webhooks import WEBHOOKS, all_graphql_documents

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "schema-3.23.28.graphql"


@cache
def saleor_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_PATH.read_text())


def errors_of(document: str) -> list[str]:
    return [error.message for error in validate(saleor_schema(), parse(document))]


DOCUMENTS = all_graphql_documents()


def test_the_package_has_the_documents_we_expect() -> None:
    names = set(DOCUMENTS)
    assert {f"subscriptions/{w.subscription_file}" for w in WEBHOOKS} <= names
    assert "queries/app_id.graphql" in names


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_against_the_schema(name: str) -> None:
    assert errors_of(DOCUMENTS[name]) == []


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_a_typo_in_the_document_is_caught(name: str) -> None:
    document = DOCUMENTS[name]
    typo = document.replace("id\n", "idd\n", 1) if "id\n" in document else document.replace("{", "{ nope ", 2)
    assert typo != document
    assert errors_of(typo), f"a typo in {name} was not caught"
