"""CronJob batch/v1beta1 → batch/v1: the same fields; the job's pod template is normalized."""

from __future__ import annotations

from migrator.transform.conversions.convert import renamed
from migrator.transform.conversions.podtemplate import template_edit

CONVERSIONS = renamed("batch/v1beta1", "batch/v1", ("CronJob",), template_edit("CronJob"))
