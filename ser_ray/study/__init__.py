"""Study stage: a YAML study (search or ablation) run on Ray Tune into an experiment directory.

Running needs Ray (`ser_ray.study.run`); loading and validating a study does not, so what
this package exports imports neither Ray nor torch. The records a study writes are
`ser_ray.experiment`'s.
"""

from ser_ray.study.schema import StudyConfig, load_study

__all__ = ["StudyConfig", "load_study"]
