"""checkov check CKV_SKEIN_2: an S3 bucket's default encryption is SSE-KMS.

Why a check of our own: S3 encrypts every new object with SSE-S3 even when a template says
nothing, so checkov's CKV_AWS_19 passes a bucket whose BucketEncryption was deleted; this
check fails it, and asks for the stack's key (SSE-KMS) as the other resources use.
Loaded with `checkov --external-checks-dir infra/checkov` (scripts/check-infra).
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class BucketKms(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the S3 bucket's default encryption is SSE-KMS",
            id="CKV_SKEIN_2",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        rules = (props.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
        for rule in rules if isinstance(rules, list) else []:
            default = (rule or {}).get("ServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                return CheckResult.PASSED
        return CheckResult.FAILED


check = BucketKms()
