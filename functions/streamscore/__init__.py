"""streamscore: shared code of the pipeline's Lambda functions (contracts, features, scoring, drift, adapters)."""
