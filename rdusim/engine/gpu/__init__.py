"""GPU baseline engine: kernels on a DGX (roofline + waves), library fusion, host launch, TP collectives."""
