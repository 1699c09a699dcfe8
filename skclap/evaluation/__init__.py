"""Downstream evaluation: the paper's task registry and a runner for zero-shot and probe tables, and
retrieval on AudioCaps and Clotho."""

from ..metrics import mean_average_precision
from .retrieval import PUBLISHED_RETRIEVAL, RETRIEVAL_TASKS, RetrievalResult, RetrievalTask, evaluate_retrieval
from .runner import DEFAULT_MODES, MODES, evaluate, evaluate_task, results_markdown
from .tasks import DOMAINS, TASKS, Task, get_task

__all__ = [
    "DEFAULT_MODES",
    "DOMAINS",
    "MODES",
    "PUBLISHED_RETRIEVAL",
    "RETRIEVAL_TASKS",
    "RetrievalResult",
    "RetrievalTask",
    "TASKS",
    "Task",
    "evaluate",
    "evaluate_retrieval",
    "evaluate_task",
    "get_task",
    "mean_average_precision",
    "results_markdown",
]
