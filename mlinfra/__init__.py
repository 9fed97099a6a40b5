"""The course library: data, the config-driven trainer, the model store, and the reference service.

Complete and never stubbed: later labs, `make model`, the DAG lab and the Docker lab import it, so a learner who
skipped a lab can still go on. Import submodules directly (`from mlinfra.data import load_dataset`); importing
this package does no work.
"""

from __future__ import annotations

__version__ = "0.1.0"
