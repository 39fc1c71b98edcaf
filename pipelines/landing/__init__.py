"""The raw landing: every API answer on disk exactly as received, with its manifest."""
