"""Saleor Discord Memberships."""

__version__ = "0.1.0"
