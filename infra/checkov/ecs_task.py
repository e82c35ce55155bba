"""checkov check CKV_SKEIN_6: every container of an ECS task definition runs unprivileged,
as a non-root user, on a read-only root filesystem.

Why a check of our own: checkov's container checks of this kind cover Terraform and
Kubernetes, not CloudFormation's AWS::ECS::TaskDefinition; the worker reads untrusted
data and may run command transforms, so a container that could write its own image or
act as root must not slip in. Writes go to mounted volumes (the worker's /scratch).
Loaded with `checkov --external-checks-dir infra/checkov` (scripts/check-infra).
"""

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


def runs_as_root(user) -> bool:
    """A container `User` that is missing (the image's choice) or names root (0, root)."""
    if not isinstance(user, str) or not user:
        return True
    name = user.split(":", 1)[0]
    return name in ("0", "root")


def is_true(value) -> bool:
    return value is True or str(value).lower() == "true"


class EcsContainersHardened(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Ensure ECS containers are not privileged, run as a non-root user and have a read-only root filesystem",
            id="CKV_SKEIN_6",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=["AWS::ECS::TaskDefinition"],
        )

    def scan_resource_conf(self, conf):
        containers = (conf.get("Properties") or {}).get("ContainerDefinitions") or []
        if not isinstance(containers, list) or not containers:
            return CheckResult.FAILED
        for c in containers:
            if not isinstance(c, dict):
                return CheckResult.FAILED
            if is_true(c.get("Privileged", False)):
                return CheckResult.FAILED
            if not is_true(c.get("ReadonlyRootFilesystem", False)):
                return CheckResult.FAILED
            if runs_as_root(c.get("User")):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = EcsContainersHardened()
