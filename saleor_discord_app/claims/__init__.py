"""Claim codes (F8): issue, redeem by ``/claim`` (HTTP interactions) or ``!claim`` messages (F13)."""
