"""Serving under load: request streams (arrivals), schedulers (continuous batching in the
vLLM style, static batching, CoE with per-expert queues) over the step interface
(:class:`rdusim.engine.stepper.StepModel`), and the statistics of a run (metrics).
The study that drives them is :mod:`rdusim.studies.serve`."""
