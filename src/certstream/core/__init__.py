"""The sans-IO core: bytes in, events and bytes out.  No sockets, no gevent, no clocks.

Its floor (``model``, ``oids``, ``names``, ``jsontext``, ``extformat``, ``signatures``,
``profiles``, ``streams``) is plain types and tables and imports no compiled twin, so that
the twins in ``certstream._fast`` can import it; the rest of the core sits above the twins.
Nothing here imports ``certstream.shell``, ``certstream.config``, gevent, socket, ssl or
threading, or reads a clock (see "How the code is laid out" in the README).
"""
