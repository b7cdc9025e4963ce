"""Test-suite settings. Property tests draw the same examples on every run (a derandomized
Hypothesis profile), so the suite is as deterministic as the simulator; set
HYPOTHESIS_PROFILE=explore to draw fresh examples (and let Hypothesis print any failure's seed)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
