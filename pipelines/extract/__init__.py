"""What to fetch: the change check before a sync, and the incremental plan for contracts and line sets."""
