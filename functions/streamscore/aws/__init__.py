"""Adapters: the stages' ports on DynamoDB, Kinesis, EventBridge and S3, with one retry policy."""
