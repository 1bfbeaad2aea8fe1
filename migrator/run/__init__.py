"""What every stage shares when it runs: one progress callback, one report base, one journal.

- :data:`~.progress.Progress`: how a stage tells the CLI (or the orchestration) how far it
  is, task by task;
- :class:`~.report.StageReport`: what every stage's report answers (``partial``, its
  ``problems``, ``to_dict``), so the CLI and the orchestration treat them alike;
- :class:`~.journal.Journal`: a run's records kept in the store beside what it works on, so
  a re-run after a crash resumes where it stopped.

The contract each stage package follows: a ``plan(...)`` that reads (a cluster's discovery, a
snapshot) and changes nothing, which a dry-run or ``migrator plan`` shows; an
``apply(plan, ...)`` that does the work and returns its report. How a stage meets failures
is the rule of :class:`~migrator.errors.TemporaryError`.
"""

from __future__ import annotations

from migrator.run.journal import Journal
from migrator.run.progress import Progress
from migrator.run.report import Problem, StageReport

__all__ = ["Journal", "Problem", "Progress", "StageReport"]
