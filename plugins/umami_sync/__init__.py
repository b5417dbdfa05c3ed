"""umami_sync: keep an application's MongoDB users enriched with what Umami knows about their sessions.

The DAG in ``dags/umami_mongo_sync.py`` only wires the pieces of this package together:

- :mod:`umami_sync.settings`: every knob, typed and validated once;
- :mod:`umami_sync.windows`: the run's data interval turned into database and API windows;
- :mod:`umami_sync.umami`: reading Umami (PostgreSQL rows, REST API pages);
- :mod:`umami_sync.users`: the users collection (guarded updates, batched writes, indexes);
- :mod:`umami_sync.owners`: identities and sessions, and the users they belong to;
- :mod:`umami_sync.stages`: the three stages (session sync, analytics sync, status);
- :mod:`umami_sync.wiring`: the one place that builds hooks and collections and runs the stages with them.
"""
