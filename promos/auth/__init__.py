"""Users, roles, sign-in tokens, API keys and HTTP Basic."""
