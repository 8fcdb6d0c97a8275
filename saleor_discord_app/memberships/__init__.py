"""Memberships: access bought by an order line under an access rule, and its life cycle."""
