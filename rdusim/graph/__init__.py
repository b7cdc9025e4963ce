"""Operator graphs: typed ops with FLOPs and bytes (ops, tensor), validated DAGs
(opgraph), model builders (decoder, vision, model_graph, training), the Monarch FFT and
FlashFFTConv (monarch), user-written graphs (from_yaml) and summaries (summary)."""
