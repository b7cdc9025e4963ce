"""Largest values a workload may ask for. Beyond these a run cannot finish (or allocate)
on any machine this simulator models, so they are input errors that name the limit."""

MAX_BATCH = 65_536                # sequences in one batch
MAX_TOKENS = 1_048_576            # tokens in a prompt / generated / a sequence (models cap it further)
MAX_EXPERTS = 100_000             # experts of a Composition of Experts
MAX_SIM_BATCHES = 1_000_000       # CoE batches simulated per scenario
MAX_REPLICATIONS = 10_000         # independent CoE routings per scenario
MAX_REQUESTS = 10_000_000         # requests a serving run simulates
MAX_NODES = 4_096                 # nodes a footprint search may try
MAX_TP = 1_024                    # tensor-parallel degree
MAX_LAYERS = 10_000
MAX_FFT = 2 ** 30                 # FFT length / long-convolution sequence
MAX_CHANNELS = 1_048_576
MAX_ORDER = 30                    # Monarch decomposition order (2^30 has 30 prime factors)
MAX_SKEW = 100.0                  # Zipf exponent
MAX_TOLERANCE = 1_000.0           # relative latency tolerance
MAX_SEED = 2 ** 63 - 1


def upto(limit: float, ge: float | None = None, gt: float | None = 0) -> dict:
    """Field metadata for strict.build: a lower bound and this upper limit."""
    meta: dict = {"le": limit}
    if ge is not None:
        meta["ge"] = ge
    elif gt is not None:
        meta["gt"] = gt
    return meta
