"""checkov check CKV_SKEIN_4: an S3 bucket policy denies every request not made over TLS,
on the bucket and on its objects.

Why a check of our own: checkov has no such check for CloudFormation, and the template's
rule is that every bucket refuses plain HTTP (CKV2_SKEIN_5, in bucket_policy.yaml, checks
that every bucket has a policy).
Loaded with `checkov --external-checks-dir infra/checkov` (scripts/check-infra).
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


def as_list(value):
    return value if isinstance(value, list) else [value]


def denies_plain_http(stmt) -> bool:
    if not isinstance(stmt, dict) or stmt.get("Effect") != "Deny":
        return False
    if stmt.get("Principal") not in ("*", {"AWS": "*"}):
        return False
    if not {"s3:*", "*"} & set(as_list(stmt.get("Action", []))):
        return False
    condition = (stmt.get("Condition") or {}).get("Bool") or {}
    if str(condition.get("aws:SecureTransport")).lower() != "false":
        return False
    # The bucket ARN and the objects ARN (`<bucket ARN>/*`), however they are written.
    resources = [str(r) for r in as_list(stmt.get("Resource", []))]
    return len(resources) >= 2 and any("/*" in r for r in resources)


class BucketTls(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the S3 bucket policy denies requests not made over TLS",
            id="CKV_SKEIN_4",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::BucketPolicy"],
        )

    def scan_resource_conf(self, conf):
        doc = (conf.get("Properties") or {}).get("PolicyDocument") or {}
        statements = doc.get("Statement", []) if isinstance(doc, dict) else []
        if any(denies_plain_http(s) for s in as_list(statements)):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = BucketTls()
