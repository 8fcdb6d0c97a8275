"""Per-store configuration: Discord servers and access rules."""
