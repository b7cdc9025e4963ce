"""A fleet: replicas of a serving deployment behind a router, co-located or split into a
prefill pool and a decode pool (disaggregated), and the planner that searches fleets for
the smallest one meeting an SLO. A layer above one server (rdusim.serve): every replica is
the single-server simulation, driven arrival by arrival."""
