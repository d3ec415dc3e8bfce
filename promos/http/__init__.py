"""HTTP plumbing shared by every router: errors, the fast path, dependencies."""
