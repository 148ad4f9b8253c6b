"""What every stage shares: errors, the Kinesis event model, quarantine and monitoring items, times, the step runner, settings, model artifacts. No AWS SDK."""
