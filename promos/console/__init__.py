"""The web console at ``/admin``: server-rendered pages over the same services as the API
(docs/console.md). ``promos.console.router.install`` serves it in an app; its pages live in
``promos.console.pages``, one module per area."""
