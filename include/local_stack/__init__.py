"""Throwaway local services for the demo, the tests and the benchmark.

Nothing here is imported by the DAG: it starts a PostgreSQL cluster loaded with Umami's schema, a
MongoDB wire-compatible server, and a local Umami API, all on loopback.
"""
