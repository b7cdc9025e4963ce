"""MoE experts as individuals: routing, residency in HBM, and where a missing expert runs.

- :mod:`.routing`: each token of each MoE layer picks its top-k experts from a skewed
  popularity with the run's seeded Generator;
- :mod:`.residency`: which experts are in HBM (static most-popular set, LRU);
- :mod:`.costs`: the simulator's own predicted costs of one expert call -- on the device
  from HBM, copied in first (the family's copy paths, ``Family.copy_links``), or run where
  its weights are (``Family.in_place``: the host CPU, the RDU reading DDR) -- and the rule
  that picks between them (Fiddler's);
- :mod:`.run`: one request (prefill + decode) under a residency policy and a rule.
"""
