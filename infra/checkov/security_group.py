"""checkov check CKV_SKEIN_8: a security group lets nothing in and only HTTPS (TCP 443)
out.

Why a check of our own: the template's only security group is the Fargate worker's, which
talks to AWS APIs and nothing else; checkov's CloudFormation checks look at ingress to a
few ports and never at egress, and a group without SecurityGroupEgress allows all traffic
out (EC2's default rule), which this check fails too.
Loaded with `checkov --external-checks-dir infra/checkov` (scripts/check-infra).
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


def https_only(rule) -> bool:
    if not isinstance(rule, dict):
        return False
    return (
        str(rule.get("IpProtocol")).lower() in ("tcp", "6")
        and str(rule.get("FromPort")) == "443"
        and str(rule.get("ToPort")) == "443"
    )


class SecurityGroupHttpsOut(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the security group allows no ingress and only HTTPS (TCP 443) egress",
            id="CKV_SKEIN_8",
            categories=[CheckCategories.NETWORKING],
            supported_resources=["AWS::EC2::SecurityGroup"],
        )

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        if props.get("SecurityGroupIngress"):
            return CheckResult.FAILED
        egress = props.get("SecurityGroupEgress")
        if not isinstance(egress, list) or not egress:
            return CheckResult.FAILED
        return CheckResult.PASSED if all(https_only(r) for r in egress) else CheckResult.FAILED


check = SecurityGroupHttpsOut()
