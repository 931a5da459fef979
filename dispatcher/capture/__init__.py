"""Response capture: values taken from a receiver's answer (JSONPath, XPath) into the record and the log.

The expressions run in a child process (sandbox.py) that imports nothing of Django, so this package's
__init__ must stay empty of imports: the child is started with ``-m dispatcher.capture.sandbox``.
"""
