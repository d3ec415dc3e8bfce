"""Events: the transactional outbox, webhook subscriptions, and the dispatcher."""
