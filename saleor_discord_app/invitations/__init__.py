"""Welcome emails with the Connect-Discord link and claim code, reminders, and the storefront order metadata."""
