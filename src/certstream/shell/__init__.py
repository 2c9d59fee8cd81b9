"""The I/O shell: gevent greenlets, sockets and processes around the sans-IO core.

``ingest`` follows the CT logs (``follow_*``, ``pipeline``) and publishes payloads on the
``feed``; each gunicorn ``worker`` subscribes to the feed and serves clients (``hub``,
``conn``, ``endpoints``); ``app`` embeds gunicorn and starts the ingest.  Only modules in
this package may import gevent or socket.
"""
