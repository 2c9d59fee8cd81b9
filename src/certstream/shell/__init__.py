"""The I/O shell: gevent greenlets and sockets around the sans-IO core.

``ingest`` follows the CT logs and publishes payloads on the ``feed``; each gunicorn ``worker``
subscribes to the feed and serves clients; ``app`` embeds gunicorn and starts the ingest.
Only modules in this package may import gevent or socket.
"""
