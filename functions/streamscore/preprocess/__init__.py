"""Preprocess stage (pure domain): the transaction contract, per-card features, the batch and its ports."""
