"""The SN40L engine (SimPy): streaming-pipeline kernels, launch orchestration, steps, inference."""
