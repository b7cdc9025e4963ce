"""What-if sweeps: many runs of one workload over a grid of overrides.

spec      the sweep definition (CLI flags or a ``sweep:`` YAML file)
grid      points (Cartesian product or zip) and their validation before any run
point     one point's outcome: status, metrics, error, wall time
store     SQLite table of finished points (crash-safe, resumable) and CSV export
executor  local process pool or Dask distributed, one code path
runner    run one point (in a worker) and a whole sweep (in the parent)
plots     line plots and heat maps from the stored table
command   the ``rdusim sweep`` command (flags -> spec -> run -> summary)
"""
