"""The benchmark behind `make bench`: the engine's makespan against the ideal schedule and two
baseline policies, and its Azure request economy (`python -m bench --help`)."""
