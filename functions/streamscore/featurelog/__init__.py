"""The feature log: every scored transaction's features as scored, once, in S3 (the offline store)."""
