"""Runs checkov on infra/template.yaml and proves that it would catch a regression.

Run by scripts/check-infra with .venv/bin/python. checkov scans, in one run, the template
and mutated copies of it, each with one weakening edit (the table's encryption dropped, a
`Resource: "*"` added, …). The template must have 0 failed checks (skips are inline in the
template, each with its reason); every mutant must fail the check named for it. A mutation
whose anchor text is gone from the template is an error too, so this check cannot
silently turn into a no-op when the template changes.

Exit status: 0 when all of that holds, 1 otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
CHECKOV = ROOT / ".venv" / "bin" / "checkov"

# name: (resource, old text, new text, check that must fail). The old text must occur
# exactly once in the resource's block; an old text of None removes the resource.
MUTATIONS = {
    "table-without-encryption": (
        "CatalogTable",
        "      SSESpecification:\n        SSEEnabled: true\n        SSEType: KMS\n        KMSMasterKeyId: !GetAtt Key.Arn\n",
        "",
        "CKV_AWS_119",
    ),
    "table-without-point-in-time-recovery": (
        "CatalogTable",
        "PointInTimeRecoveryEnabled: true",
        "PointInTimeRecoveryEnabled: false",
        "CKV_AWS_28",
    ),
    "star-resource-instead-of-the-run-machine": (
        "TriggerRole",
        "Resource: !Ref MigrationRunStateMachine",
        'Resource: "*"',
        "CKV_SKEIN_1",
    ),
    "added-statement-on-star-resource": (
        "MigrateRole",
        "              - Sid: Key\n",
        '              - {Sid: Anything, Effect: Allow, Action: "dynamodb:Scan", Resource: "*"}\n              - Sid: Key\n',
        "CKV_SKEIN_1",
    ),
    "task-token-calls-on-an-arn-iam-never-matches": (
        "MigrateRole",
        'Resource: "*" # task-token calls have no resource-level permissions (the token names the execution)',
        "Resource: !Ref DatasetMigrationStateMachine",
        "CKV_SKEIN_3",
    ),
    "queue-without-encryption": (
        "DefaultQueue",
        "      KmsMasterKeyId: !Ref Key\n",
        "",
        "CKV_AWS_27",
    ),
    "bucket-without-encryption": (
        "DataBucket",
        "      BucketEncryption:\n        ServerSideEncryptionConfiguration:\n          - ServerSideEncryptionByDefault:\n              SSEAlgorithm: aws:kms\n              KMSMasterKeyID: !GetAtt Key.Arn\n            BucketKeyEnabled: true\n",
        "",
        "CKV_SKEIN_2",
    ),
    "bucket-with-public-acls": (
        "RunRequestsBucket",
        "BlockPublicAcls: true",
        "BlockPublicAcls: false",
        "CKV_AWS_53",
    ),
    "bucket-without-its-tls-only-policy": (
        "DataBucketPolicy",
        None,  # the whole resource goes
        None,
        "CKV2_SKEIN_5",
    ),
    "bucket-policy-letting-plain-http-in": (
        "RunRequestsBucketPolicy",
        'Condition: {Bool: {aws:SecureTransport: "false"}}',
        'Condition: {Bool: {aws:SecureTransport: "true"}}',
        "CKV_SKEIN_4",
    ),
    "log-group-without-encryption": (
        "PlanLogGroup",
        "      KmsKeyId: !GetAtt Key.Arn\n",
        "",
        "CKV_AWS_158",
    ),
    "function-without-reserved-concurrency": (
        "PlanFunction",
        "      ReservedConcurrentExecutions: !Ref PlanReservedConcurrency\n",
        "",
        "CKV_AWS_115",
    ),
    "topic-without-encryption": (
        "AlarmTopic",
        "      KmsMasterKeyId: !Ref Key\n",
        "",
        "CKV_AWS_26",
    ),
    "worker-container-privileged": (
        "WorkerTaskDefinition",
        "Privileged: false",
        "Privileged: true",
        "CKV_SKEIN_6",
    ),
    "worker-root-filesystem-writable": (
        "WorkerTaskDefinition",
        "ReadonlyRootFilesystem: true",
        "ReadonlyRootFilesystem: false",
        "CKV_SKEIN_6",
    ),
    "worker-running-as-root": (
        "WorkerTaskDefinition",
        'User: "65532:65532"',
        'User: "0:0"',
        "CKV_SKEIN_6",
    ),
    "worker-user-left-to-the-image": (
        "WorkerTaskDefinition",
        '          User: "65532:65532"\n',
        "",
        "CKV_SKEIN_6",
    ),
    "pass-role-on-any-role": (
        "DatasetMigrationRole",
        "Resource: [!GetAtt WorkerTaskRole.Arn, !GetAtt WorkerExecutionRole.Arn]",
        'Resource: "*"',
        "CKV_SKEIN_7",
    ),
    "pass-role-to-any-service": (
        "DatasetMigrationRole",
        "                Condition:\n                  StringEquals: {iam:PassedToService: ecs-tasks.amazonaws.com}\n",
        "",
        "CKV_SKEIN_7",
    ),
    "run-task-of-any-task-definition": (
        "DatasetMigrationRole",
        "Resource: !Ref WorkerTaskDefinition",
        'Resource: "*"',
        "CKV_SKEIN_1",
    ),
    "worker-security-group-all-traffic-out": (
        "WorkerSecurityGroup",
        "        - IpProtocol: tcp\n          FromPort: 443\n          ToPort: 443\n",
        '        - IpProtocol: "-1"\n',
        "CKV_SKEIN_8",
    ),
    "worker-security-group-with-default-egress": (
        "WorkerSecurityGroup",
        "      SecurityGroupEgress:\n        - IpProtocol: tcp\n          FromPort: 443\n          ToPort: 443\n          CidrIp: 0.0.0.0/0\n          Description:",
        "      Metadata:\n        Description:",
        "CKV_SKEIN_8",
    ),
    "worker-security-group-with-ingress": (
        "WorkerSecurityGroup",
        "      SecurityGroupEgress:\n",
        "      SecurityGroupIngress:\n        - {IpProtocol: tcp, FromPort: 443, ToPort: 443, CidrIp: 10.0.0.0/8}\n      SecurityGroupEgress:\n",
        "CKV_SKEIN_8",
    ),
    "worker-cluster-without-container-insights": (
        "WorkerCluster",
        "Value: enabled",
        "Value: disabled",
        "CKV_AWS_65",
    ),
}


def mutate(text: str, resource: str, old: str | None, new: str | None) -> str:
    """Replace `old` by `new` inside one resource's block (from `  Name:` to the next key)."""
    m = re.search(rf"^  {re.escape(resource)}:\n(?:(?:    .*)?\n)+", text, re.M)
    if not m:
        raise ValueError(f"resource {resource} is not in the template")
    block = m.group(0)
    if old is None:
        return text[: m.start()] + text[m.end() :]
    if block.count(old) != 1:
        raise ValueError(f"{resource}: the text to change occurs {block.count(old)} times, want once: {old!r}")
    return text[: m.start()] + block.replace(old, new) + text[m.end() :]


def main() -> int:
    if not CHECKOV.exists():
        print(f"checkov check: {CHECKOV} is missing; run scripts/setup", file=sys.stderr)
        return 2
    source = TEMPLATE.read_text()
    errors = []
    with tempfile.TemporaryDirectory(prefix="skein-checkov-") as tmp:
        files = {"template": Path(tmp) / "template.yaml"}
        files["template"].write_text(source)
        for name, (resource, old, new, _) in MUTATIONS.items():
            try:
                mutated = mutate(source, resource, old, new)
            except ValueError as e:
                errors.append(
                    f"mutation {name} no longer applies ({e}); update MUTATIONS in {Path(__file__).relative_to(ROOT)}"
                )
                continue
            files[name] = Path(tmp) / f"mutant-{name}.yaml"
            files[name].write_text(mutated)
        out = subprocess.run(
            [
                str(CHECKOV),
                "-d",
                tmp,
                "--framework",
                "cloudformation",
                "--skip-download",
                "--external-checks-dir",
                str(ROOT / "infra" / "checkov"),
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
        )
        try:
            report = json.loads(out.stdout)
        except ValueError:
            print(
                f"checkov check: checkov gave no JSON report (exit {out.returncode}):\n{out.stderr[-3000:]}",
                file=sys.stderr,
            )
            return 1
        reports = report if isinstance(report, list) else [report]
        failed: dict[str, set[str]] = {}
        passed = skipped = 0
        for r in reports:
            res = r.get("results", {})
            for c in res.get("failed_checks", []):
                failed.setdefault(Path(c["file_path"]).name, set()).add(c["check_id"])
                if Path(c["file_path"]).name == "template.yaml":
                    print(
                        f"FAILED: {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range']})"
                    )
            for c in res.get("passed_checks", []):
                passed += Path(c["file_path"]).name == "template.yaml"
            for c in res.get("skipped_checks", []):
                skipped += Path(c["file_path"]).name == "template.yaml"
        template_failed = failed.get("template.yaml", set())
        print(
            f"checkov infra/template.yaml: {passed} passed, {len(template_failed)} failed, {skipped} skipped (each skip has its reason inline)"
        )
        if template_failed:
            errors.append(f"infra/template.yaml fails {sorted(template_failed)}")
        for name, (resource, _, _, check) in MUTATIONS.items():
            if name not in files:
                continue
            got = failed.get(files[name].name, set()) - template_failed
            if check in got:
                print(f"ok: mutant {name} ({resource}) fails {check}")
            else:
                errors.append(
                    f"mutant {name} ({resource}) does not fail {check} (it fails {sorted(got)}): checkov would not catch this regression"
                )
    for e in errors:
        print(f"FAILED: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
