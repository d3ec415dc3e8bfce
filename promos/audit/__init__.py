"""The audit log: who changed what through a management route, when, and from what to what."""
