"""Who is calling: API keys and their store, JWT bearer tokens, the roles a caller holds,
and the single-use stream tokens a browser's EventSource trades a key for."""
