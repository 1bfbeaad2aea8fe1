"""The transform stage: built-in API conversions, cluster-difference rules and user rules.

:func:`~migrator.transform.runner.transform` streams a snapshot into a new one;
:mod:`~migrator.transform.checkapis` predicts what it will do; see the modules for details.
"""
