"""Every AWS request the functions make, recorded in the embedded run and turned into IAM requests.

`RequestRecorder.capturing(function, role)` wraps boto3 client creation while a function's
handler module loads (FunctionContainer.load imports it then): each client the module builds
gets botocore event hooks that record every API call it makes afterwards — the API
parameters (`before-parameter-build`) and the request as serialized for the wire
(`before-call`: its URL and headers, so S3's x-amz-server-side-encryption headers are what
the SDK really sends). Nothing in local/embedded changes; the functions run as in `make demo`.

`authorization_requests(call)` turns one API call into the IAM requests AWS authorizes for it:
the action, each resource ARN, the role that made it and the condition keys that policies
here test (aws:SecureTransport, S3's encryption headers). A call it cannot map raises
UnmappedCallError, so an unexpected call fails the policy test instead of escaping it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3.session
from iam_policies import Request

# S3 request headers that are condition keys of s3:PutObject (Service Authorization Reference,
# "Actions, resources, and condition keys for Amazon S3": s3:x-amz-server-side-encryption and
# s3:x-amz-server-side-encryption-aws-kms-key-id "Filters access by ... server-side encryption").
S3_HEADER_KEYS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id")
# S3 object operations and the action each is authorized as.
S3_OBJECT_ACTIONS = {
    "PutObject": "s3:PutObject",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
}


class UnmappedCallError(LookupError):
    """An API call this module does not know how to authorize: map it in authorization_requests."""


@dataclass(frozen=True)
class RecordedCall:
    function: str  # the deployed function name
    role: str  # its execution role's ARN
    service: str  # botocore's service name: s3, dynamodb, kinesis, events...
    operation: str  # PutObject
    params: Mapping[str, Any]  # the API parameters
    headers: Mapping[str, str]  # the serialized request's headers, names lower-case
    url: str
    region: str
    secure_transport: bool

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"


class RequestRecorder:
    """Records the API calls of the clients created under `capturing`, from any thread.

    `local_endpoint`: the embedded moto's URL. The functions set no endpoint in their code
    (their clients take AWS_ENDPOINT_URL, which only the embedded run sets); on Lambda the SDK
    uses the service's regional HTTPS endpoint, so a call to `local_endpoint` is recorded as
    aws:SecureTransport true. Any other URL is recorded by its own scheme.
    """

    def __init__(self, local_endpoint: str | None = None):
        self.local_endpoint = local_endpoint
        self.calls: list[RecordedCall] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def capturing(self, function: str, role: str) -> Iterator[None]:
        """Clients that boto3 sessions create meanwhile are recorded as `function`'s (role `role`)."""
        original = boto3.session.Session.client
        recorder = self

        def client(session: boto3.session.Session, *args: Any, **kwargs: Any) -> Any:
            created = original(session, *args, **kwargs)
            recorder.attach(created, function, role)
            return created

        boto3.session.Session.client = client  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            boto3.session.Session.client = original  # type: ignore[method-assign]

    def attach(self, client: Any, function: str, role: str) -> None:
        def keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["recorded_params"] = dict(params)

        def record(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            url = params.get("url", "")
            headers = {str(k).lower(): _text(v) for k, v in params.get("headers", {}).items()}
            local = self.local_endpoint is not None and url.startswith(self.local_endpoint)
            call = RecordedCall(
                function=function,
                role=role,
                service=model.service_model.service_name,
                operation=model.name,
                params=context.get("recorded_params", {}),
                headers=headers,
                url=url,
                region=context.get("client_region") or client.meta.region_name,
                secure_transport=local or urlsplit(url).scheme == "https",
            )
            with self._lock:
                self.calls.append(call)

        client.meta.events.register("before-parameter-build.*.*", keep_params)
        client.meta.events.register("before-call.*.*", record)

    def of(self, function: str) -> list[RecordedCall]:
        with self._lock:
            return [c for c in self.calls if c.function == function]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def authorization_requests(call: RecordedCall) -> list[Request]:
    """The IAM requests AWS authorizes for one API call (one per action and resource)."""
    partition, account = call.role.split(":")[1], call.role.split(":")[4]
    context: dict[str, str] = {
        "aws:SecureTransport": "true" if call.secure_transport else "false",
        "aws:PrincipalArn": call.role,
        "aws:PrincipalAccount": account,
        "aws:RequestedRegion": call.region,
    }
    head = f"arn:{partition}"
    regional = f"{call.region}:{account}"
    p = call.params
    pairs: list[tuple[str, str]]  # (action, resource)

    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"{head}:dynamodb:{regional}:table/{name}"

    if call.service == "dynamodb":
        pairs = _dynamodb_pairs(call, table, context)
    elif call.service == "kinesis":
        stream = p.get("StreamARN") or f"{head}:kinesis:{regional}:stream/{p['StreamName']}"
        pairs = [(f"kinesis:{call.operation}", stream)]
    elif call.service == "events" and call.operation == "PutEvents":
        buses = {e.get("EventBusName") or "default" for e in p["Entries"]}
        pairs = [
            (
                "events:PutEvents",
                b if b.startswith("arn:") else f"{head}:events:{regional}:event-bus/{b}",
            )
            for b in sorted(buses)
        ]
    elif call.service == "s3" and call.operation in S3_OBJECT_ACTIONS:
        pairs = [(S3_OBJECT_ACTIONS[call.operation], f"{head}:s3:::{p['Bucket']}/{p['Key']}")]
        context |= {f"s3:{h}": call.headers[h] for h in S3_HEADER_KEYS if h in call.headers}
    elif call.service == "s3" and call.operation == "ListObjectsV2":
        # "ListObjectsV2 ... you must have READ access to the bucket" as s3:ListBucket on the
        # bucket, its Prefix the s3:prefix condition key (S3 User Guide, "Policy actions for
        # Amazon S3": ListObjectsV2 → s3:ListBucket; "Amazon S3 condition key examples")
        pairs = [("s3:ListBucket", f"{head}:s3:::{p['Bucket']}")]
        if "Prefix" in p:
            context["s3:prefix"] = p["Prefix"]
    elif call.service == "stepfunctions" and call.operation in ("StartExecution", "ListExecutions"):
        pairs = [(f"states:{call.operation}", p["stateMachineArn"])]
    elif call.service == "sns" and "TopicArn" in p:
        pairs = [(f"sns:{call.operation}", p["TopicArn"])]
    elif call.service == "sqs" and "QueueUrl" in p:
        path = urlsplit(p["QueueUrl"]).path.strip("/").split("/")
        pairs = [(f"sqs:{call.operation}", f"{head}:sqs:{call.region}:{path[0]}:{path[1]}")]
    else:
        raise UnmappedCallError(call.name)
    origin = f"{call.function} {call.name}"
    return [
        Request(call.role, action, resource, dict(context), origin) for action, resource in pairs
    ]


def _dynamodb_pairs(
    call: RecordedCall, table: Callable[[str], str], context: dict[str, str]
) -> list[tuple[str, str]]:
    """(action, resource) of a DynamoDB call; the partition key it names goes into `context`."""
    op, p = call.operation, call.params
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{op}", table(name)) for name in p["RequestItems"]]
    if op in ("TransactWriteItems", "TransactGetItems"):
        # "Permissions for Put, Update, Delete, and Get actions are governed by the
        # permissions used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem
        # operations. For the ConditionCheck action, you can use the
        # dynamodb:ConditionCheckItem permission" (DynamoDB Developer Guide, "Using IAM
        # with DynamoDB transactions")
        actions = {
            "Put": "PutItem",
            "Update": "UpdateItem",
            "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem",
            "Get": "GetItem",
        }
        return [
            (f"dynamodb:{actions[kind]}", table(part["TableName"]))
            for item in p["TransactItems"]
            for kind, part in item.items()
        ]
    if op in ("Query", "Scan") and "IndexName" in p:
        return [(f"dynamodb:{op}", f"{table(p['TableName'])}/index/{p['IndexName']}")]
    if "TableName" not in p:
        raise UnmappedCallError(call.name)
    key = p.get("Key") or p.get("Item") or {}
    # "dynamodb:LeadingKeys - Represents the first key attribute of a table - in other words,
    # the partition key." (DynamoDB Developer Guide, "Using IAM policy conditions for
    # fine-grained access control"). Our tables with a sort key name their partition key pk;
    # the others have one key attribute.
    leading = key.get("pk") or (next(iter(key.values())) if len(key) == 1 else None)
    if leading is not None:
        context["dynamodb:LeadingKeys"] = next(iter(leading.values()))
    return [(f"dynamodb:{op}", table(p["TableName"]))]
