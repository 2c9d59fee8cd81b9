"""The soak run and the harness the crash tests share: the real server (gunicorn, its
workers and the ingest) following a replay CT log that grows, and cheap C clients that
check every index they receive.  ``python -m soak --minutes 10`` (see ``soak.__main__``)."""
