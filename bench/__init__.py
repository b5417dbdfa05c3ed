"""The benchmark of umami-mongo-sync: run ``python bench/run.py`` (see README.md)."""
