"""Powertools singletons shared by the handlers: one Logger, Metrics and Tracer per container.

The Tracer patches botocore, so every DynamoDB, Kinesis, EventBridge and S3
call is its own X-Ray subsegment. Importing the X-Ray SDK costs ~30-40 ms of
cold start with LAMBDA_TASK_ROOT set (measured; ~0.12 s outside Lambda, where
it also builds a sampling client), paid once per container.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
