"""Backfill: grant existing paid orders when a rule is added to a product (F18)."""
