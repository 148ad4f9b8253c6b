"""A model's life after training: the registry operations (publish, promote, rollback, status)
and their command line, `python -m models`."""
