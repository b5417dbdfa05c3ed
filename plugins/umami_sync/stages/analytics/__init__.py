"""Stage 2, analytics sync: each website's sessions from Umami's API become ``umamiAnalytics`` on users.

- :mod:`.jobs`: the mapped tasks (website x sub-window) and how they are planned;
- :mod:`.figures`: the pure rules that turn list rows into one exact figure per session;
- :mod:`.contest`: which task of a run writes a user active on several websites, and a page's changes;
- :mod:`.changes`: one pass over a listing, page by page: its changes and the figures it keeps;
- :mod:`.reads`: the reads a task passes to those parts (sessions' events, sessions' first and last events);
- :mod:`.runner`: one task, end to end (reads, changes, writes, its result).
"""
