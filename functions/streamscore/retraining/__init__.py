"""Retraining runner (pure domain): when a RetrainingRequested may be acted on, and the one run it starts."""
