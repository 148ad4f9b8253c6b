"""streamscore: the pipeline's Lambda code, one package per stage (preprocess, scoring, drift) over core, with aws adapters and handlers."""
