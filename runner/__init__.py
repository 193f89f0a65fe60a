"""batch-runner: declarative LLM batch jobs, reconciled against a lockfile.

The public surface is what this module exports (`__all__`); see runner.api for the functions.
"""

from .actions import Action, Kind, Plan
from .api import adopt, apply, cancel, connect, costs, forget, plan, spending, status, validate
from .apply import Options, Outcome
from .errors import (
                  BudgetError,
                  DataError,
                  LockfileError,
                  ManifestError,
                  OutputError,
                  ProviderError,
                  RunnerError,
                  TemplateError,
)
from .status import BatchStatus, Health, Sync

__version__ = "0.1.0"

__all__ = [
    "Action", "BatchStatus", "BudgetError", "DataError", "Health", "Kind", "LockfileError",
    "ManifestError", "Options", "Outcome", "OutputError", "Plan", "ProviderError", "RunnerError",
    "Sync", "TemplateError", "__version__", "adopt", "apply", "cancel", "connect", "costs",
    "forget", "plan", "spending", "status", "validate",
]
