"""The sans-IO core: bytes in, events and bytes out.  No sockets, no gevent, no clocks.

Modules here never import ``certstream.shell``, gevent or socket; ``tests/test_layering.py``
checks that in a fresh interpreter.
"""
