"""The orchestration: one plan file, one resumable run of every stage, teardown, rehearsal.

:mod:`.plan` is the plan as data and :mod:`.planfile` reads it from YAML (every error with its
path and line); :mod:`.preflight` checks both clusters and the store before anything is
touched; :mod:`.runner` runs the phases with their state in the store's run journal.
"""
