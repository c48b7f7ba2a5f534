"""The local web dashboard (``smartroller dashboard``, docs/dashboard.md).

- ``readonly``: the session store opened for reading only, its failures as pages.
- ``live``: the daemon's live status files, watched and pushed to the live page.
- ``trends``: per-week figures over the stored sessions.
- ``pages``: the HTML (no script but the live page's own, no CDN).
- ``app``: the aiohttp application, its routes, and ``serve``.

It sits above the daemon (it reads the daemon's live files and the store) and below
the command line; it never writes to the store.
"""
