"""Study stage: a YAML study (search or ablation) run on Ray Tune into an experiment directory.

Running needs Ray (`ser_ray.study.run`); loading a study and reading its ledger do not, so
this package imports neither Ray nor torch.
"""

from ser_ray.study.ledger import append_units, read_ledger, recorded_units
from ser_ray.study.schema import StudyConfig, load_study

__all__ = ["StudyConfig", "append_units", "load_study", "read_ledger", "recorded_units"]
