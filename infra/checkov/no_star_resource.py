"""checkov check CKV_SKEIN_1: an IAM Allow statement on `Resource: "*"` only for actions
that have no resource-level permissions (X-Ray segments, CloudWatch Logs vended delivery).

Why a check of our own: checkov's IAM checks for CloudFormation flag `*` only for some
action classes (write, exfiltration, permissions management); this one makes any `*`
resource fail where a specific ARN exists, which is the template's least-privilege rule.
Loaded with `checkov --external-checks-dir infra/checkov` (scripts/check-infra).
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

# Actions that AWS authorizes only on "*" (Service Authorization Reference: no resource types).
NO_RESOURCE_LEVEL = {
    "xray:puttracesegments",
    "xray:puttelemetryrecords",
    "xray:getsamplingrules",
    "xray:getsamplingtargets",
    "logs:createlogdelivery",
    "logs:getlogdelivery",
    "logs:updatelogdelivery",
    "logs:deletelogdelivery",
    "logs:listlogdeliveries",
    "logs:putresourcepolicy",
    "logs:describeresourcepolicies",
    "logs:describeloggroups",
}


class NoStarResource(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name='Ensure IAM statements use "*" as resource only for actions without resource-level permissions',
            id="CKV_SKEIN_1",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"],
        )

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        documents = []
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for policy in props.get("Policies") or []:
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                documents.append(policy["PolicyDocument"])
        for doc in documents:
            statements = doc.get("Statement", []) if isinstance(doc, dict) else []
            for stmt in statements if isinstance(statements, list) else [statements]:
                if not isinstance(stmt, dict) or stmt.get("Effect") != "Allow":
                    continue
                resources = stmt.get("Resource", [])
                resources = resources if isinstance(resources, list) else [resources]
                if "*" not in resources:
                    continue
                actions = stmt.get("Action", [])
                actions = actions if isinstance(actions, list) else [actions]
                if any(not isinstance(a, str) or a.lower() not in NO_RESOURCE_LEVEL for a in actions):
                    return CheckResult.FAILED
        return CheckResult.PASSED


check = NoStarResource()
