"""`python -m ser_ray`: the form `ray job submit` runs on a cluster."""

from ser_ray.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
