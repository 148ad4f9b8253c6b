"""Scoring stage (pure domain): the shipped model, the batch and its ports. Imports numpy; onnxruntime only when a model loads."""
