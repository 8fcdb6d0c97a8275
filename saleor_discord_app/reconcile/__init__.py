"""The subscription check (F14): compare desired roles with Discord's and repair only the difference."""
