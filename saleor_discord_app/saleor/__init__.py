"""Everything Saleor-facing: manifest, install, webhooks, signatures, GraphQL client."""
