"""The offline demo (``certstream --demo``): real recorded CT entries served by a local log.

``synth`` rewrites recorded entries into endless distinct ones (also used by the conformance
replay log and the benchmarks), ``corpus`` loads the entries packaged with certstream,
``ctlog`` is the growing demo log (sans-IO), ``server`` its process, ``launch`` what the
``certstream`` command does to start it and follow it.  Importing this package imports none
of them.
"""
