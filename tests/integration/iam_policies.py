"""IAM policy evaluation offline: identity policies, resource policies and key policies for one request.

moto enforces no IAM or resource policy, so the stack's policies are checked here against the
requests the functions really make (see aws_requests.py). This evaluates what the IAM User Guide
documents for requests within one account, and only the parts template.yaml uses: anything
else (NotAction, NotPrincipal, ForAnyValue:, an operator not listed below, policy variables)
raises UnsupportedPolicyError rather than being guessed at.

- Condition operators (IAM User Guide, "IAM JSON policy elements: Condition operators"):
  String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,NotLike},
  Arn{Equals,Like,NotEquals,NotLike}, Bool, Null, and the ...IfExists form of each but Null.
  "If the key that you specify in a policy condition is not present in the request context,
  the values do not match and the condition is false. If the policy condition requires that
  the key is not matched, such as StringNotLike or ArnNotLike, and the right key is not
  present, the condition is true. This logic applies to all condition operators except
  ...IfExists and Null check."
  ...IfExists: "If the policy key is present in the context of the request, process the key
  as specified in the policy. If the key is not present, evaluate the condition element as
  true." Null: "use either true (the key doesn't exist — it is null) or false (the key exists
  and its value is not null)". ArnEquals/ArnLike: "Each of the six colon-delimited components
  of the ARN is checked separately and each can include multi-character match wildcards (*) or
  single-character match wildcards (?)."
- Several operators, or several keys under one operator, must all hold; several values of one
  key are alternatives: "If you specify multiple Condition elements in a statement, or multiple
  keys in a single Condition element, AWS evaluates them using a logical AND operation. If you
  specify multiple values for a single condition key, AWS evaluates the condition using a
  logical OR operation." (the IAM pages of the AWS service guides). "Condition key names are
  not case-sensitive." (IAM User Guide, "IAM JSON policy elements: Condition")
- Decision (IAM User Guide, "Policy evaluation logic"): "By default, all requests are
  implicitly denied", "An explicit allow in an identity-based or resource-based policy
  overrides this default", "An explicit deny in any policy overrides any allows." KMS key
  policies are the exception: they "must explicitly allow access for principals"; a key policy
  statement for the account (its root) lets IAM policies grant the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any


class UnsupportedPolicyError(ValueError):
    """A policy uses something this evaluator does not implement: extend it, do not guess."""


@dataclass(frozen=True)
class Request:
    """One authorization request: who asks for which action on which resource, with what context."""

    principal: str  # the role ARN (a role session is authorized as its role's policies)
    action: str  # service:Action, e.g. s3:PutObject
    resource: str  # an ARN
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    origin: str = ""  # what made it, for messages ("drift-check s3.PutObject")

    def with_context(self, changes: Mapping[str, str | None]) -> Request:
        """This request with context keys set (to a value) or removed (None)."""
        context = {k: v for k, v in self.context.items() if k not in changes}
        context |= {k: v for k, v in changes.items() if v is not None}
        return Request(self.principal, self.action, self.resource, context, self.origin)

    def __str__(self) -> str:
        origin = f" ({self.origin})" if self.origin else ""
        return f"{self.principal} {self.action} on {self.resource}{origin}"


class Decision(StrEnum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    because: str = ""  # the deciding statement ("policy/Sid"), or why nothing allowed

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


@dataclass(frozen=True)
class Policy:
    name: str
    document: Mapping[str, Any]

    def statements(self) -> list[Mapping[str, Any]]:
        statements = self.document.get("Statement", [])
        return [statements] if isinstance(statements, Mapping) else list(statements)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


@cache
def _wildcard(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """* matches any run of characters, ? any one character; nothing else is special."""
    if "${" in pattern:
        raise UnsupportedPolicyError(f"policy variables are not evaluated: {pattern!r}")
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )  # fmt: skip
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ARN matching: the six colon-delimited components one by one, each with wildcards."""
    wanted, actual = pattern.split(":", 5), value.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return False
    return all(_like(w, a) for w, a in zip(wanted, actual, strict=True))


def _string_equals(p: str, v: str) -> bool:
    return p == v


def _string_equals_ignore_case(p: str, v: str) -> bool:
    return p.lower() == v.lower()


def _string_like(p: str, v: str) -> bool:
    return _like(p, v)


def _bool(p: str, v: str) -> bool:
    return str(p).lower() == str(v).lower()


# base operator -> (match of one policy value against one request value, negated)
_OPERATORS = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "Bool": (_bool, False),
}


def _lookup(context: Mapping[str, Any], key: str) -> list[str] | None:
    """The request's values of `key` (names compare case-insensitively); None when absent."""
    for name, value in context.items():
        if name.lower() == key.lower():
            return [str(v) for v in _listed(value)]
    return None


def condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any]) -> bool:
    """Whether a statement's Condition block holds for a request context."""
    for operator, keys in condition.items():
        qualifier, _, base = operator.rpartition(":")
        if qualifier not in ("", "ForAllValues", "ForAnyValue"):
            raise UnsupportedPolicyError(f"condition operator {operator} is not evaluated")
        for key, policy_values in keys.items():
            values = [str(v) for v in _listed(policy_values)]
            request = _lookup(context, key)
            if qualifier == "":
                holds = _key_holds(base, key, values, request)
            elif qualifier == "ForAllValues":
                # "ForAllValues ... returns true if every context key value in the request
                # matches at least one context key value in the policy. It also returns true if
                # there are no context keys in the request." (IAM User Guide, "Set operators
                # for multivalued context keys")
                holds = all(_key_holds(base, key, values, [v]) for v in request or [])
            else:
                # "ForAnyValue ... returns true if any one of the context key values in the
                # request matches any one of the context key values in the policy. For context
                # keys that are not present in the request, the condition returns false."
                holds = any(_key_holds(base, key, values, [v]) for v in request or [])
            if not holds:
                return False
    return True


def _key_holds(operator: str, key: str, policy: list[str], request: list[str] | None) -> bool:
    if operator == "Null":
        absent = request is None or request == [""]
        return any((v.lower() == "true") == absent for v in policy)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _OPERATORS:
        raise UnsupportedPolicyError(f"condition operator {operator} is not evaluated (key {key})")
    match, negated = _OPERATORS[base]
    if request is None:
        return if_exists or negated
    found = any(match(p, v) for p in policy for v in request)
    return not found if negated else found


def _matches_action(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        raise UnsupportedPolicyError("NotAction is not evaluated")
    # "The prefix and the action name are case insensitive." (IAM User Guide, "IAM JSON policy
    # elements: Action")
    return any(_like(p, action, ignore_case=True) for p in _listed(statement["Action"]))


def _matches_resource(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        raise UnsupportedPolicyError("NotResource is not evaluated")
    return any(_like(p, resource) for p in _listed(statement.get("Resource", "*")))


class Grant(StrEnum):
    """How a resource or key policy statement's Principal covers the requester."""

    NONE = "none"
    DIRECT = "direct"  # "*", or the role itself
    ACCOUNT = "account"  # the requester's account: IAM policies decide


def principal_grant(statement: Mapping[str, Any], principal: str) -> Grant:
    if "NotPrincipal" in statement:
        raise UnsupportedPolicyError("NotPrincipal is not evaluated")
    given = statement.get("Principal")
    if given == "*":
        return Grant.DIRECT
    if not isinstance(given, Mapping):
        return Grant.NONE
    account = principal.split(":")[4]
    best = Grant.NONE
    for kind, names in given.items():
        for name in _listed(names):
            if kind != "AWS":
                continue  # a service principal is never a role of this account
            if name in ("*", principal):
                return Grant.DIRECT
            if name == account or re.fullmatch(rf"arn:[^:]+:iam::{account}:root", name):
                best = Grant.ACCOUNT
    return best


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    return (
        _matches_action(statement, request.action)
        and _matches_resource(statement, request.resource)
        and condition_holds(statement.get("Condition", {}), request.context)
    )


def _matching(
    policies: Iterable[Policy], request: Request, effect: str, with_principal: bool
) -> list[tuple[str, Grant]]:
    found: list[tuple[str, Grant]] = []
    for policy in policies:
        for index, statement in enumerate(policy.statements()):
            if statement["Effect"] != effect:
                continue
            grant = (
                principal_grant(statement, request.principal) if with_principal else Grant.DIRECT
            )
            if grant is Grant.NONE or not _applies(statement, request):
                continue
            found.append((f"{policy.name}/{statement.get('Sid', index)}", grant))
    return found


def evaluate(
    request: Request,
    identity: Sequence[Policy],
    resource: Sequence[Policy] = (),
    key_policy: Policy | None = None,
) -> Verdict:
    """The decision for a request within one account (no boundaries, SCPs or session policies)."""
    denied = _matching(identity, request, "Deny", with_principal=False)
    for policies in (resource, [key_policy] if key_policy else []):
        denied += _matching(policies, request, "Deny", with_principal=True)
    if denied:
        return Verdict(Decision.EXPLICIT_DENY, denied[0][0])
    by_identity = [name for name, _ in _matching(identity, request, "Allow", False)]
    if key_policy is not None:
        return _key_verdict(request, key_policy, by_identity)
    by_resource = [n for n, g in _matching(resource, request, "Allow", True) if g is Grant.DIRECT]
    allowed_by = by_identity + by_resource
    if allowed_by:
        return Verdict(Decision.ALLOW, allowed_by[0])
    return Verdict(Decision.IMPLICIT_DENY, "no statement allows it")


def _key_verdict(request: Request, key_policy: Policy, by_identity: list[str]) -> Verdict:
    """A key policy must allow the role itself, or its account (then IAM policies decide)."""
    by_key = _matching([key_policy], request, "Allow", with_principal=True)
    direct = [name for name, grant in by_key if grant is Grant.DIRECT]
    delegated = [name for name, grant in by_key if grant is Grant.ACCOUNT]
    if direct or (delegated and by_identity):
        return Verdict(Decision.ALLOW, (direct or by_identity)[0])
    if not delegated:
        return Verdict(
            Decision.IMPLICIT_DENY, "the key policy allows neither the role nor its account"
        )
    return Verdict(Decision.IMPLICIT_DENY, "no identity policy statement allows it")


# ---------------------------------------------------------------- the template's policies


@dataclass(frozen=True)
class StackNames:
    """What CloudFormation intrinsics resolve to in one deployed stack."""

    stack_name: str
    region: str
    account: str
    parameters: Mapping[str, str]
    physical_ids: Mapping[str, str]  # logical id -> physical id
    types: Mapping[str, str]  # logical id -> resource type (of template.yaml, before the transform)
    conditions: Mapping[str, Any] = field(default_factory=dict)  # the template's Conditions
    partition: str = "aws"

    def condition(self, name: str) -> bool:
        """A template condition's value for the stack's parameters."""
        return self._holds(self.conditions[name])

    def _holds(self, node: Any) -> bool:
        ((function, argument),) = node.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (resolve(side, self) for side in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self._holds(argument[0])
        if function == "Fn::And":
            return all(self._holds(item) for item in argument)
        if function == "Fn::Or":
            return any(self._holds(item) for item in argument)
        raise UnsupportedPolicyError(f"condition function {function} is not evaluated")

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_ids:
            return self.physical_ids[name]
        raise UnsupportedPolicyError(f"Ref {name}: no such parameter or resource in the stack")

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind, physical = self.types.get(logical_id), self.ref(logical_id)
        head = f"arn:{self.partition}"
        regional = f"{self.region}:{self.account}"
        arns = {
            "AWS::Kinesis::Stream": f"{head}:kinesis:{regional}:stream/{physical}",
            "AWS::DynamoDB::Table": f"{head}:dynamodb:{regional}:table/{physical}",
            "AWS::S3::Bucket": f"{head}:s3:::{physical}",
            "AWS::KMS::Key": f"{head}:kms:{regional}:key/{physical}",
            "AWS::Events::EventBus": f"{head}:events:{regional}:event-bus/{physical}",
            # CloudFormation's LogGroup Arn ends in ":*" (it covers the group's streams)
            "AWS::Logs::LogGroup": f"{head}:logs:{regional}:log-group:{physical}:*",
            "AWS::SQS::Queue": f"{head}:sqs:{regional}:{physical.rsplit('/', 1)[-1]}",
            "AWS::IAM::Role": f"{head}:iam::{self.account}:role/{physical}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute == "Name" and kind in ("AWS::Events::EventBus", "AWS::SQS::Queue"):
            return physical.rsplit("/", 1)[-1]
        raise UnsupportedPolicyError(
            f"Fn::GetAtt {logical_id}.{attribute} ({kind}) is not resolved"
        )


_NO_VALUE = object()


def resolve(node: Any, names: StackNames) -> Any:
    """A template fragment with its intrinsics resolved (Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
    Fn::Select, Fn::Split, Fn::If on the template's Conditions, AWS::NoValue)."""
    resolved = _resolve(node, names)
    if resolved is _NO_VALUE:
        raise UnsupportedPolicyError("the whole fragment resolves to AWS::NoValue")
    return resolved


def _resolve(node: Any, names: StackNames) -> Any:
    if isinstance(node, list):
        return [v for v in (_resolve(item, names) for item in node) if v is not _NO_VALUE]
    if not isinstance(node, Mapping):
        return node
    if len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref" and argument == "AWS::NoValue":
            return _NO_VALUE
        if function == "Fn::If":
            condition, if_true, if_false = argument
            return _resolve(if_true if names.condition(condition) else if_false, names)
        if function == "Ref" or function.startswith("Fn::"):
            return _intrinsic(function, argument, names)
    items = ((key, _resolve(value, names)) for key, value in node.items())
    return {key: value for key, value in items if value is not _NO_VALUE}


def _intrinsic(function: str, argument: Any, names: StackNames) -> Any:
    if function == "Ref":
        return names.ref(argument)
    if function == "Fn::GetAtt":
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        return names.get_att(logical_id, attribute)
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        return _substitute(text, {k: resolve(v, names) for k, v in variables.items()}, names)
    if function == "Fn::Join":
        separator, items = argument
        return str(separator).join(resolve(items, names))
    if function == "Fn::Select":
        index, items = argument
        return resolve(items, names)[int(resolve(index, names))]
    if function == "Fn::Split":
        separator, text = argument
        return str(resolve(text, names)).split(separator)
    raise UnsupportedPolicyError(f"{function} is not resolved")


def _substitute(text: str, variables: Mapping[str, str], names: StackNames) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return names.get_att(logical_id, attribute)
        return names.ref(name)

    return re.sub(r"\$\{([^}]+)\}", value, text)


def role_policies(template: Mapping[str, Any], role_id: str, names: StackNames) -> list[Policy]:
    """The inline policies of an AWS::IAM::Role, resolved; managed policies are refused."""
    properties = template["Resources"][role_id]["Properties"]
    if properties.get("ManagedPolicyArns") or properties.get("PermissionsBoundary"):
        raise UnsupportedPolicyError(
            f"{role_id}: managed policies and boundaries are not evaluated"
        )
    return [
        Policy(f"{role_id}/{p['PolicyName']}", resolve(p["PolicyDocument"], names))
        for p in properties.get("Policies", [])
    ]


def resource_policy(template: Mapping[str, Any], logical_id: str, names: StackNames) -> Policy:
    """A bucket policy's or a key policy's document, resolved."""
    properties = template["Resources"][logical_id]["Properties"]
    document = properties.get("PolicyDocument") or properties["KeyPolicy"]
    return Policy(logical_id, resolve(document, names))


@dataclass(frozen=True)
class StackPolicies:
    """template.yaml's function roles, bucket policies and key policies, resolved for one stack."""

    template: Mapping[str, Any]
    names: StackNames

    def _of_type(self, kind: str) -> list[str]:
        return [
            logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == kind
            and ("Condition" not in resource or self.names.condition(resource["Condition"]))
        ]

    def arn(self, logical_id: str) -> str:
        return self.names.get_att(logical_id, "Arn")

    def _role_of(self, logical_id: str) -> Any:
        """The role a function (Role) or a CodeBuild project (ServiceRole) runs with."""
        properties = self.template["Resources"][logical_id]["Properties"]
        return properties.get("Role", properties.get("ServiceRole"))

    def function_roles(self) -> dict[str, str]:
        """Each function's role, and each build project's: role ARN -> the role's logical id."""
        roles = {}
        runners = self._of_type("AWS::Serverless::Function") + self._of_type(
            "AWS::CodeBuild::Project"
        )
        for function_id in runners:
            role = self._role_of(function_id)
            logical_id = (
                role["Fn::GetAtt"][0]
                if isinstance(role["Fn::GetAtt"], list)
                else (role["Fn::GetAtt"].split(".")[0])
            )
            roles[self.arn(logical_id)] = logical_id
        return roles

    def role_arn(self, function_id: str) -> str:
        return str(resolve(self._role_of(function_id), self.names))

    def identity(self, role_arn: str) -> list[Policy]:
        roles = self.function_roles()
        if role_arn not in roles:
            raise UnsupportedPolicyError(f"{role_arn} is no function role of the template")
        return role_policies(self.template, roles[role_arn], self.names)

    def bucket_policies(self, resource: str) -> list[Policy]:
        policies = []
        for logical_id in self._of_type("AWS::S3::BucketPolicy"):
            bucket = resolve(
                self.template["Resources"][logical_id]["Properties"]["Bucket"], self.names
            )
            if resource == f"arn:{self.names.partition}:s3:::{bucket}" or resource.startswith(
                f"arn:{self.names.partition}:s3:::{bucket}/"
            ):
                policies.append(resource_policy(self.template, logical_id, self.names))
        return policies

    def key_policy(self, resource: str) -> Policy | None:
        for logical_id in self._of_type("AWS::KMS::Key"):
            if self.arn(logical_id) == resource:
                return resource_policy(self.template, logical_id, self.names)
        return None

    def evaluate(self, request: Request) -> Verdict:
        return evaluate(
            request,
            self.identity(request.principal),
            self.bucket_policies(request.resource),
            self.key_policy(request.resource) if request.action.startswith("kms:") else None,
        )

    def implied_kms(self, request: Request) -> list[Request]:
        """The KMS requests a service makes with the caller's permissions to serve `request`.

        S3, for a put into an SSE-KMS bucket: "To upload an object encrypted with an AWS KMS
        key to Amazon S3, you need kms:GenerateDataKey permissions on the key." (S3 User Guide,
        "Using server-side encryption with AWS KMS keys (SSE-KMS)"); the key is the one the
        request names, else the bucket default's. Kinesis, for a put into a stream encrypted
        with a customer managed key: "Your Kinesis stream producers must have the
        kms:GenerateDataKey permission." (Kinesis Data Streams Developer Guide, "Permissions to
        use user-generated KMS keys"). DynamoDB's use of the tables' key is not modelled here.
        """
        partition, region = self.names.partition, self.names.region
        via, key, context = "", None, {}
        if request.action == "s3:PutObject":
            bucket_arn = request.resource.split("/", 1)[0]
            for logical_id in self._of_type("AWS::S3::Bucket"):
                if self.arn(logical_id) != bucket_arn:
                    continue
                properties = self.template["Resources"][logical_id]["Properties"]
                rules = properties.get("BucketEncryption", {}).get(
                    "ServerSideEncryptionConfiguration", []
                )
                default = (
                    resolve(rules[0]["ServerSideEncryptionByDefault"], self.names) if rules else {}
                )
                algorithm = request.context.get(
                    "s3:x-amz-server-side-encryption", default.get("SSEAlgorithm")
                )
                if algorithm in ("aws:kms", "aws:kms:dsse"):
                    key = request.context.get(
                        "s3:x-amz-server-side-encryption-aws-kms-key-id",
                        default.get("KMSMasterKeyID"),
                    )
                    via = f"s3.{region}.amazonaws.com"
                    context = {"kms:EncryptionContext:aws:s3:arn": bucket_arn}
        elif request.action in ("kinesis:PutRecords", "kinesis:PutRecord"):
            for logical_id in self._of_type("AWS::Kinesis::Stream"):
                if self.arn(logical_id) != request.resource:
                    continue
                encryption = resolve(
                    self.template["Resources"][logical_id]["Properties"].get(
                        "StreamEncryption", {}
                    ),
                    self.names,
                )
                if encryption.get("EncryptionType") == "KMS":
                    key = encryption["KeyId"]
                    via = f"kinesis.{region}.amazonaws.com"
                    context = {"kms:EncryptionContext:aws:kinesis:arn": request.resource}
        if key is None:
            return []
        if not str(key).startswith(f"arn:{partition}:kms:"):
            raise UnsupportedPolicyError(f"{request}: key {key} is not named by its ARN")
        shared = {k: v for k, v in request.context.items() if k.startswith("aws:")}
        return [
            Request(
                request.principal,
                "kms:GenerateDataKey",
                str(key),
                shared | {"kms:ViaService": via} | context,
                f"{request.origin} (KMS, through {via})",
            )
        ]
