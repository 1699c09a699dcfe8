"""Downstream evaluation: the paper's task registry and a runner for zero-shot and probe tables."""

from ..metrics import mean_average_precision
from .runner import DEFAULT_MODES, MODES, evaluate, evaluate_task, results_markdown
from .tasks import DOMAINS, TASKS, Task, get_task

__all__ = [
    "DEFAULT_MODES",
    "DOMAINS",
    "MODES",
    "TASKS",
    "Task",
    "evaluate",
    "evaluate_task",
    "get_task",
    "mean_average_precision",
    "results_markdown",
]
