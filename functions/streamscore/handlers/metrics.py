"""Every CloudWatch metric name the handlers emit: one definition, read by the handlers and by the template test.

A name ending in `_` is a prefix: the handler appends a reason or a decision to it
(`Quarantined_missing_field`, `Decision_decline`).
"""

from __future__ import annotations

from enum import StrEnum


class PreprocessMetric(StrEnum):
    RECORDS_IN = "RecordsIn"
    TRANSACTIONS_APPLIED = "TransactionsApplied"
    FEATURES_WRITTEN = "FeaturesWritten"
    RECORDS_FORWARDED = "RecordsForwarded"
    RECORDS_REPLAYED = "RecordsReplayed"
    RECORDS_REPEATED = "RecordsRepeated"
    RECORDS_FAILED = "RecordsFailed"
    STATE_READS = "StateReads"
    RETRIES = "Retries"
    RECORDS_QUARANTINED = "RecordsQuarantined"
    QUARANTINED_ = "Quarantined_"


class ScoreMetric(StrEnum):
    RECORDS_IN = "RecordsIn"
    RECORDS_SCORED = "RecordsScored"
    RECORDS_ALREADY_SCORED = "RecordsAlreadyScored"
    RECORDS_DUPLICATE = "RecordsDuplicate"
    RECORDS_FAILED = "RecordsFailed"
    RECORDS_QUARANTINED = "RecordsQuarantined"
    QUARANTINED_ = "Quarantined_"
    DECISION_ = "Decision_"
    ALERTS_PUBLISHED = "AlertsPublished"
    RETRIES = "Retries"
    BATCH_INFERENCE_MS = "BatchInferenceMs"
    END_TO_END_LATENCY_MS = "EndToEndLatencyMs"
    MODEL_SWAPPED = "ModelSwapped"  # the registry's champion replaced the serving model
    MODEL_REFUSED = "ModelRefused"  # a version failed a check and was never served
    MODEL_POINTER_UNREADABLE = "ModelPointerUnreadable"
    THRESHOLDS_NOT_APPLIED = "ThresholdsNotApplied"  # the stack's were set for another version
    # the challenger (scoring/shadow.py): predictions written with its score, its model run per
    # batch, batches it failed to score (they were scored and written without it)
    SHADOW_SCORED = "ShadowScored"
    SHADOW_INFERENCE_MS = "ShadowInferenceMs"
    SHADOW_FAILED = "ShadowFailed"
    # the decision-rate guard: what the serving model's card expects of the predictions written
    # (DecisionRateAlarm compares Decision_review/_decline with them), declines the review-only
    # switch turned into reviews, and the switch turned on or off
    EXPECTED_REVIEWS = "ExpectedReviews"
    EXPECTED_DECLINES = "ExpectedDeclines"
    DECISIONS_CAPPED = "DecisionsCapped"
    DECLINES_SAMPLED = "DeclinesSampled"  # would-be declines reviewed instead (DeclineSampleShare)
    REVIEW_ONLY_SWITCHED = "ReviewOnlySwitched"
    # reasons (scoring/reasons.py): rows explained and the explainer's time per batch, and
    # reviews and declines written without reasons although ReasonCount asks for some
    REASONS_EXPLAINED = "ReasonsExplained"
    EXPLAIN_MS = "ExplainMs"
    REASONS_MISSING = "ReasonsMissing"


class LabelMetric(StrEnum):
    RECORDS_IN = "RecordsIn"
    LABELS_WRITTEN = "LabelsWritten"
    LABEL_ = "Label_"  # per label written: Label_fraud, Label_legit
    LABELS_REPLACED = "LabelsReplaced"  # a written label that replaced a stored one
    LABELS_UNMATCHED = "LabelsUnmatched"  # a written label of a transaction never scored
    LABELS_UNCHANGED = "LabelsUnchanged"  # the stored label was at least this one
    LABELS_SUPERSEDED = "LabelsSuperseded"  # a greater label of the transaction in the batch
    RECORDS_FAILED = "RecordsFailed"
    RECORDS_QUARANTINED = "RecordsQuarantined"
    QUARANTINED_ = "Quarantined_"
    RETRIES = "Retries"


class FeatureLogMetric(StrEnum):
    RECORDS_IN = "RecordsIn"  # PredictionsTable stream records
    ROWS_LOGGED = "RowsLogged"  # first writes of predictions logged by this invocation
    ROWS_ALREADY_LOGGED = "RowsAlreadyLogged"  # a retried batch's object was there
    FEATURES_MISSING = "FeaturesMissing"  # logged without features: FeaturesTable had none
    RECORDS_FAILED = "RecordsFailed"
    RETRIES = "Retries"


class DriftMetric(StrEnum):
    PSI = "PSI"  # per feature, with a `feature` dimension
    MAX_PSI = "MaxPSI"
    PREDICTION_PSI = "PredictionPSI"
    PREDICTION_JS_DISTANCE = "PredictionJSDistance"
    DRIFT_DETECTED = "DriftDetected"
    RETRAINING_REQUESTED = "RetrainingRequested"
    WINDOW_SAMPLES = "WindowSamples"
    # the quality check (drift/quality.py), of the champion over the mature window
    RECALL_AT_DECLINE = "RecallAtDecline"  # declines' frauds estimated, the rest from labels
    REALIZED_RECALL_AT_REVIEW = "RealizedRecallAtReview"
    ESTIMATED_RECALL_AT_REVIEW = "EstimatedRecallAtReview"
    REALIZED_PRECISION_AT_REVIEW = "RealizedPrecisionAtReview"
    ESTIMATED_PRECISION_AT_REVIEW = "EstimatedPrecisionAtReview"
    PR_AUC = "PrAuc"
    FRAUDS_SEEN = "FraudsSeen"
    QUALITY_RETRAINING_REQUESTED = "QualityRetrainingRequested"
    # over the early window (QUALITY_EARLY_DAYS), before its labels have all come back: an upper
    # bound of the mature figure
    EARLY_RECALL_AT_DECLINE = "EarlyRecallAtDecline"
    EARLY_FRAUDS_SEEN = "EarlyFraudsSeen"
    # the promotion check: 1 when this run decided on a challenger (promoted or rejected it)
    PROMOTION_DECIDED = "PromotionDecided"


class RetrainStartMetric(StrEnum):
    # days the trigger's run waits before it trains (the waiting rule), as of this delivery
    WAIT_DAYS = "RetrainWaitDays"


# the POWERTOOLS_SERVICE_NAME template.yaml gives each function → the metrics it emits
METRICS_BY_SERVICE: dict[str, type[StrEnum]] = {
    "preprocess": PreprocessMetric,
    "score": ScoreMetric,
    "labels": LabelMetric,
    "feature-log": FeatureLogMetric,
    "drift-check": DriftMetric,
    "retrain-start": RetrainStartMetric,
}
