"""batch-runner: declarative LLM batch jobs, reconciled against a lockfile."""

__version__ = "0.1.0"
