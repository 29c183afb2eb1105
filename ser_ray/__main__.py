"""`python -m ser_ray`: the form `ray job submit` runs on a cluster."""

from ser_ray.cli import main

raise SystemExit(main())
