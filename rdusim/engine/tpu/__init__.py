"""The TPU family: a slice of TPU chips (rdusim.engine.tpu.family)."""
