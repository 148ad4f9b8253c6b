"""What the template tests share: the environment, keys and settings the handlers rely on, and running the tools."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
VENV_BIN = Path(sys.executable).parent
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
REGION = "us-east-1"

GLOBAL_ENV = {"POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_TRACE_DISABLED"}
FUNCTION_ENV = {
    "PreprocessFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "ENTITY_STATE_TABLE",
        "FEATURES_TABLE",
        "QUARANTINE_TABLE",
        "MONITORING_TABLE",
        "FEATURES_STREAM_NAME",
        "FEATURES_TTL_DAYS",
        "STREAM_RETENTION_HOURS",
        "QUARANTINE_TTL_DAYS",
        "MONITORING_TTL_DAYS",
        "PARALLELIZATION_FACTOR",
    },
    "ScoreFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "PREDICTIONS_TABLE",
        "QUARANTINE_TABLE",
        "MONITORING_TABLE",
        "EVENT_BUS_NAME",
        "MODEL_DIR",
        "REVIEW_THRESHOLD",
        "DECLINE_THRESHOLD",
        "ALERT_ON_REVIEW",
        "DECLINE_SAMPLE_SHARE",
        "REASON_COUNT",
        "PREDICTIONS_TTL_DAYS",
        "STREAM_RETENTION_HOURS",
        "QUARANTINE_TTL_DAYS",
        "MONITORING_TTL_DAYS",
        "PARALLELIZATION_FACTOR",
        "THRESHOLDS_MODEL_VERSION",
        "ARTIFACTS_BUCKET",
        "MODEL_REFRESH_SECONDS",
    },
    "DriftCheckFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "MONITORING_TABLE",
        "ARTIFACTS_BUCKET",
        "EVENT_BUS_NAME",
        "MODEL_DIR",
        "DRIFT_WINDOW_MINUTES",
        "PSI_WARN_THRESHOLD",
        "PSI_DRIFT_THRESHOLD",
        "JS_DRIFT_THRESHOLD",
        "MIN_SAMPLE_SIZE",
        "RETRAIN_COOLDOWN_HOURS",
        "MONITORING_TTL_DAYS",
        "LABEL_MATURITY_DAYS",
        "QUALITY_WINDOW_DAYS",
        "QUALITY_RECALL_THRESHOLD",
        "QUALITY_MIN_FRAUDS",
        "QUALITY_EARLY_DAYS",
        "PROMOTION_MODE",
        "PROMOTION_MIN_HOURS",
        "PROMOTION_MIN_LABELLED",
        "PROMOTION_MIN_FRAUDS",
        "PROMOTION_MAX_DAYS",
        "PROMOTION_RECALL_TOLERANCE",
        "PROMOTION_DECLINE_RATE_TOLERANCE",
    },
    "LabelsFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "LABELS_TABLE",
        "PREDICTIONS_TABLE",
        "QUARANTINE_TABLE",
        "MONITORING_TABLE",
        "LABELS_TTL_DAYS",
        "STREAM_RETENTION_HOURS",
        "QUARANTINE_TTL_DAYS",
        "MONITORING_TTL_DAYS",
    },
    "FeatureLogFunction": {"POWERTOOLS_SERVICE_NAME", "FEATURES_TABLE", "ARTIFACTS_BUCKET"},
    "RetrainStartFunction": {
        "POWERTOOLS_SERVICE_NAME",
        "STATE_MACHINE_ARN",
        "RETRAIN_POST_TRIGGER_DAYS",
        "RETRAIN_MATURITY_DAYS",
    },
}
# The keys the handlers read and write by (docs/ARCHITECTURE.md, "Contracts", "Tables and keys").
TABLE_KEYS = {
    "EntityStateTable": [("card_id", "HASH")],
    "FeaturesTable": [("transaction_id", "HASH")],
    "PredictionsTable": [("transaction_id", "HASH")],
    "LabelsTable": [("transaction_id", "HASH")],
    "QuarantineTable": [("record_id", "HASH")],
    "MonitoringTable": [("pk", "HASH"), ("sk", "RANGE")],
}
ESM_SETTINGS = (
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "ParallelizationFactor",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
)
MAPPINGS = {
    "PreprocessEventSourceMapping": ("Preprocess", "TransactionsStream", "PreprocessFunction"),
    "ScoreEventSourceMapping": ("Score", "FeaturesStream", "ScoreFunction"),
}
# Non-default settings, so the deployed mappings prove the parameters reach them.
MAPPING_OVERRIDES = {
    "PreprocessStartingPosition": "TRIM_HORIZON",
    "PreprocessBatchSize": "250",
    "PreprocessMaximumBatchingWindowInSeconds": "2",
    "PreprocessParallelizationFactor": "3",
    "PreprocessBisectBatchOnFunctionError": "false",
    "PreprocessMaximumRetryAttempts": "7",
    "PreprocessMaximumRecordAgeInSeconds": "600",
    "ScoreStartingPosition": "LATEST",
    "ScoreBatchSize": "100",
    "ScoreMaximumBatchingWindowInSeconds": "0",
    "ScoreParallelizationFactor": "2",
    "ScoreBisectBatchOnFunctionError": "true",
    "ScoreMaximumRetryAttempts": "-1",
    "ScoreMaximumRecordAgeInSeconds": "-1",
}


def rule_dimensions(rule: str) -> dict[str, Any]:
    """The FailedInvocations dimensions of a rule on the stack's bus (the name from the rule's ARN)."""
    return {
        "EventBusName": {"Fn::GetAtt": ["EventBus", "Name"]},
        "RuleName": {"Fn::Select": [2, {"Fn::Split": ["/", {"Fn::GetAtt": [rule, "Arn"]}]}]},
    }


RETRAINING_TARGETS = {
    "RetrainingStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:retrain",
    "RetrainingSageMakerPipelineArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/retrain",
}


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def offline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        SAM_CLI_TELEMETRY="0",
        **extra,
    )
    return env


def run(command: list[str | Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
