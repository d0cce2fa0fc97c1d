"""The shell above the components: the ``akeneo-connector`` command and local mode.

It is the only package that may import every stage (operator, receiver, worker, resync, PIM
formats, the shared kernel): it starts them, it is never imported by them.
"""
