"""Operations: Prometheus metrics (``metrics``, ``scrape``, ``router``), structured logs
(``logs``), and the per-request timing, counting, logging and request ids (``requests``).

Domain code counts what it committed through the counters in ``promos.observability.metrics``.
"""
