"""Largest values a workload may ask for. Beyond these a run cannot finish (or allocate)
on any machine this simulator models, so they are input errors that name the limit."""

MAX_BATCH = 65_536                # sequences in one batch
MAX_TOKENS = 1_048_576            # tokens in a prompt / generated / a sequence (models cap it further)
MAX_EXPERTS = 100_000             # experts of a Composition of Experts
MAX_SIM_BATCHES = 1_000_000       # CoE batches simulated per scenario
MAX_REPLICATIONS = 10_000         # independent CoE routings per scenario
MAX_REQUESTS = 1_000_000          # requests a serving run simulates (about 0.5 GB of request state)
MAX_NODES = 4_096                 # nodes a footprint search may try
MAX_TP = 1_024                    # tensor-parallel degree
MAX_LAYERS = 10_000
MAX_FFT = 2 ** 30                 # FFT length / long-convolution sequence
MAX_CHANNELS = 1_048_576
MAX_ORDER = 30                    # Monarch decomposition order (2^30 has 30 prime factors)
MAX_SKEW = 100.0                  # Zipf exponent
MAX_TOLERANCE = 1_000.0           # relative latency tolerance
MAX_SEED = 2 ** 63 - 1
MAX_SIM_TIME_S = 1e8              # simulated seconds (3 years): the clock still resolves 15 ns, far below a step
MAX_BISECTION = 30                # bisection steps of a search (2^-30 of the bracket: past any use)
MAX_LOG_SIGMA = 10.0              # log-space sigma of a lognormal length (e^10: a spread of 22,000x)
MAX_CV = 1e6                      # coefficient of variation of inter-arrival times

# The physical range of every number by the unit its key names (``capacity_bytes``,
# ``latency_s``, ...): a value that is not 0 lies in [low, high] (a field's own bounds
# decide whether 0 is allowed and may narrow the range). First matching suffix wins.
UNIT_RANGES: tuple[tuple[str, float, float, str], ...] = (
    ("_bytes_per_s", 1.0, 1e18, "in bytes per second"),
    ("_flops_per_s", 1.0, 1e21, "in operations per second"),
    ("_per_s", 1e-9, 1e21, "in events per second"),
    ("_bytes", 1e-3, 1e21, "in bytes"),
    ("_hz", 1.0, 1e12, "in hertz"),
    ("_s", 1e-15, MAX_SIM_TIME_S, "in seconds"),
    ("efficiency", 1e-3, 1.0, "(a fraction)"),
)
MIN_MAGNITUDE = 1e-21             # any other number that is not 0 (the mirror of strict.MAX_MAGNITUDE)


def upto(limit: float, ge: float | None = None, gt: float | None = 0) -> dict:
    """Field metadata for strict.build: a lower bound and this upper limit."""
    meta: dict = {"le": limit}
    if ge is not None:
        meta["ge"] = ge
    elif gt is not None:
        meta["gt"] = gt
    return meta
