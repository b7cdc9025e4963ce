"""Fine-tuning jobs: a dataset of queries, padded batches, and the largest batch that fits."""
