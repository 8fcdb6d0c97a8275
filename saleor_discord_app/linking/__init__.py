"""Customer-facing account linking (F6, F7, F12): signed links to a page with a "Connect Discord" button,
the OAuth2 code flow (``identify guilds.join``) and the callback that links the customer's Discord account."""
