"""Creates infra/template.yaml as a CloudFormation stack in a moto server and checks its wiring.

Run by scripts/check-infra with .venv/bin/python (moto[server], aws-sam-translator, cfn-lint
and boto3 come from scripts/requirements.txt).

What it does, in order:
1. Translates the SAM template to plain CloudFormation offline (aws-sam-translator, the
   library cfn-lint uses), after pointing every function at a small zip in a moto bucket
   and inlining each state machine's definition from state-machines/.
2. Makes a moto copy: DefinitionSubstitutions become an Fn::Join of the definition's text
   and the substituted values (moto ignores DefinitionSubstitutions), and resource types
   moto's CloudFormation does not implement are dropped, each one printed with its reason.
3. Starts its own moto server on a free 127.0.0.1 port, makes a VPC with two subnets for
   the Fargate worker's parameters (WorkerVpcId, WorkerSubnets; WorkerImageUri is an
   example ECR URI), creates the stack, and waits for CREATE_COMPLETE; otherwise prints
   the failing resource and reason and exits 1.
4. Checks the wiring of what was created: every substitution resolved to a function, state
   machine or queue that exists; each state machine's role may call exactly what its
   definition calls; every function runs provided.al2023 on arm64 with SKEIN_TABLE naming
   the table; the queues, event source mappings, table keys and EventBridge rule match the
   contracts in infra/README.md; the Fargate worker's cluster, task definition (its
   `worker` container, image, scratch volume, roles) and security group are the ones
   MigrateOnFargate names, and the state machine may run that task and pass it exactly its
   two roles.
5. Proves the checks bite: mutated copies of the template, each with one wiring error (a
   GetAtt of nothing, a missing invoke permission, a queue named off the prefix, …), must
   each fail with the error named for it (MUTANTS; `--no-mutants` skips them).

Exit status: 0 when the stack was created, every check passed and every mutant failed;
1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config
from cfnlint.decode import decode
from moto.cloudformation.parsing import get_model_map
from samtranslator.translator.transform import transform

from moto_wiring import CHECKS, PLACEHOLDER, REGION, STACK, WORKER_IMAGE, CheckFailed

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
CODE_BUCKET = "skein-check-code"
CODE_KEY = "bootstrap.zip"

# Why a resource type is not in moto's copy (printed); any other unsupported type is
# dropped with a generic reason.
WHY_DROPPED = {
    "AWS::CloudWatch::Alarm": "moto's CloudFormation does not implement alarms (checked by cfn-lint and checkov instead)",
    "AWS::S3::BucketPolicy": "moto's CloudFormation does not implement bucket policies (the TLS-only policies are checked by checkov)",
    "AWS::SQS::QueuePolicy": "moto's CloudFormation does not implement queue policies",
    "AWS::SNS::TopicPolicy": "moto's CloudFormation does not implement topic policies",
    "AWS::SNS::Subscription": "moto's CloudFormation does not implement subscriptions (and it is conditional on AlarmEmail)",
}


# Wiring errors the check must catch: (old text, new text, words the failure must contain).
# Each old text must occur exactly once in infra/template.yaml.
MUTANTS = {
    "a GetAtt of a resource that does not exist": (
        "Role: !GetAtt PlanRole.Arn",
        "Role: !GetAtt PlanRoleTypo.Arn",
        "PlanRoleTypo",
    ),
    "dataset-migration's role without lambda:InvokeFunction on publish": (
        "                  - !GetAtt PublishFunction.Arn\n                  - !GetAtt RollbackFunction.Arn\n",
        "                  - !GetAtt RollbackFunction.Arn\n",
        "may not lambda:InvokeFunction",
    ),
    "migration-run's role without StartExecution on itself (Distributed Map)": (
        "              - Sid: DistributedMapChildren\n                Effect: Allow\n                Action: states:StartExecution\n",
        "              - Sid: DistributedMapChildren\n                Effect: Allow\n                Action: states:DescribeStateMachine\n",
        "on itself",
    ),
    "a group queue named off the MigrateQueueUrlPrefix": (
        'QueueName: !Sub "${AWS::StackName}-migrate-finance"',
        'QueueName: !Sub "${AWS::StackName}-finance"',
        "no queue named",
    ),
    "DescribeExecution granted on the state machine instead of its executions": (
        'execution:${AWS::StackName}-dataset-migration:*"',
        'stateMachine:${AWS::StackName}-dataset-migration"',
        "does not apply to",
    ),
    "a substitution naming the wrong function": (
        "VerifyFunctionArn: !GetAtt VerifyFunction.Arn",
        "VerifyFunctionArn: !GetAtt PublishFunction.Arn",
        "VerifyFunctionArn refers to 'PublishFunction'",
    ),
    "dataset-migration's role passing the worker its task role but not its execution role": (
        "Resource: [!GetAtt WorkerTaskRole.Arn, !GetAtt WorkerExecutionRole.Arn]",
        "Resource: [!GetAtt WorkerTaskRole.Arn]",
        "want exactly the task's roles",
    ),
    "ecs:RunTask without its cluster condition": (
        "                Condition:\n                  ArnEquals: {ecs:cluster: !GetAtt WorkerCluster.Arn}\n",
        "",
        "no ArnEquals ecs:cluster condition",
    ),
    "the worker container renamed (MigrateOnFargate overrides `worker`)": (
        "        - Name: worker\n",
        "        - Name: skein\n",
        "overrides container 'worker'",
    ),
    "the spill directory on the read-only root filesystem": (
        "{Name: SKEIN_SPILL_DIR, Value: /scratch}",
        "{Name: SKEIN_SPILL_DIR, Value: /tmp}",
        "SKEIN_SPILL_DIR '/tmp' is not a writable volume's mount point",
    ),
    "the image's repository cut at its first slash (skein/worker read as skein)": (
        '!Split [".amazonaws.com/", !Ref WorkerImageUri]',
        '!Split ["/", !Ref WorkerImageUri]',
        "want the image's repository",
    ),
}


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("template", nargs="?", type=Path, default=INFRA / "template.yaml")
    args.add_argument("--no-mutants", action="store_true", help="skip the mutated copies that must fail")
    opts = args.parse_args()
    failures = run(opts.template, print)
    for f in failures:
        print(f"FAILED: {f}")
    if failures:
        print(f"moto stack check: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("moto stack check: the template's wiring holds")
    if opts.no_mutants:
        return 0
    source = opts.template.read_text()
    bad = 0
    with tempfile.TemporaryDirectory(prefix="skein-moto-") as tmp:
        for name, (old, new, expect) in MUTANTS.items():
            if source.count(old) != 1:
                print(
                    f"FAILED: mutant '{name}' no longer applies: its text occurs {source.count(old)} times; update MUTANTS"
                )
                bad += 1
                continue
            path = Path(tmp) / "mutant.yaml"
            path.write_text(source.replace(old, new))
            got = run(path, lambda *_: None)
            hit = [f for f in got if expect in f]
            if hit:
                print(f"ok: mutant '{name}' fails: {hit[0][:160]}")
            else:
                print(
                    f"FAILED: mutant '{name}' does not fail with {expect!r} (failures: {got}): the check would miss this wiring error"
                )
                bad += 1
    return 1 if bad else 0


def run(template_path: Path, say) -> list[str]:
    """The failures of one template: empty when its stack reached CREATE_COMPLETE in moto
    and every wiring check passed."""
    try:
        template = load_sam_template(template_path)
        check_substitution_names(template)
        try:
            cfn = translate(template)
        except CheckFailed:
            raise
        except Exception as e:  # samtranslator's InvalidDocumentException and friends
            raise CheckFailed(f"SAM translation: {e}") from e
        moto_copy, dropped = moto_template(cfn)
    except CheckFailed as e:
        return [str(e)]
    for kind, names in sorted(dropped.items()):
        why = WHY_DROPPED.get(kind, "moto's CloudFormation does not implement this type")
        say(f"moto copy: dropped {len(names)} {kind} ({', '.join(sorted(names))}): {why}")
    failures: list[str] = []
    with MotoServer() as endpoint:
        aws = Clients(endpoint)
        upload_code(aws)
        parameters = worker_network(aws)
        try:
            create_stack(aws, moto_copy, parameters, say)
        except CheckFailed as e:
            return [str(e)]
        say(f"moto: stack {STACK} reached CREATE_COMPLETE ({len(moto_copy['Resources'])} resources)")
        for check in CHECKS:
            what = check.__name__.removeprefix("check_").replace("_", " ")
            try:
                check(aws, cfn)
                say(f"ok: {what}")
            except CheckFailed as e:
                failures.append(f"{what}: {e}")
    return failures


# ------------------------------------------------------------------ template


def load_sam_template(path: Path) -> dict:
    """The SAM template as plain data, with code and definitions made local-translatable.
    Paths in it are relative to infra/ (so a mutated copy elsewhere reads the same files)."""
    decoded, matches = decode(str(path))
    if decoded is None or matches:
        raise CheckFailed(f"{path}: cannot parse: {[str(m) for m in matches]}")
    template = json.loads(json.dumps(decoded))
    for name, res in template["Resources"].items():
        props = res.setdefault("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": CODE_KEY}
        elif res["Type"] == "AWS::Serverless::StateMachine":
            uri = props.pop("DefinitionUri", None)
            if not isinstance(uri, str):
                raise CheckFailed(f"{path}: {name}: DefinitionUri must be a path to state-machines/*.asl.json")
            path = (INFRA / uri).resolve()
            try:
                props["Definition"] = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise CheckFailed(f"{path}: {name}: DefinitionUri {uri}: {e}") from e
    return template


def check_substitution_names(template: dict) -> None:
    """`<Name>FunctionArn` must name `<Name>Function`, `<Name>StateMachineArn` `<Name>StateMachine`:
    a swapped reference would resolve and pass every other check."""
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::StateMachine":
            continue
        for key, value in res["Properties"].get("DefinitionSubstitutions", {}).items():
            if not key.endswith("Arn"):
                continue
            want = key.removesuffix("Arn")
            got = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0] if isinstance(value, dict) else None
            if got != want:
                raise CheckFailed(f"{name}: DefinitionSubstitutions {key} refers to {got!r}, want {want}")


def translate(template: dict) -> dict:
    """SAM → CloudFormation, offline (no managed policy lookup: the template names none)."""

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # the translator asks boto for the region
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its metrics nag at exit
    return transform(copy.deepcopy(template), {}, NoManagedPolicies())


def moto_template(cfn: dict) -> tuple[dict, dict[str, list[str]]]:
    """The copy moto can create: substitutions applied by Fn::Join, unsupported types dropped."""
    t = copy.deepcopy(cfn)
    dropped: dict[str, list[str]] = {}
    for name, res in list(t["Resources"].items()):
        if res["Type"] not in get_model_map():
            dropped.setdefault(res["Type"], []).append(name)
            del t["Resources"][name]
    gone = {n for names in dropped.values() for n in names}
    for name, res in t["Resources"].items():
        if res["Type"] == "AWS::StepFunctions::StateMachine":
            props = res["Properties"]
            props["DefinitionString"] = substituted(
                name, props["DefinitionString"], props.pop("DefinitionSubstitutions", {})
            )
        deps = res.get("DependsOn")
        if deps:
            deps = [deps] if isinstance(deps, str) else deps
            res["DependsOn"] = [d for d in deps if d not in gone]
        res["Properties"] = without_refs_to(gone, name, res.get("Properties", {}))
    return t, dropped


def substituted(machine: str, definition, substitutions: dict):
    """DefinitionString with every ${Name} replaced by its substitution, as an Fn::Join."""
    if isinstance(definition, dict) and "Fn::Join" in definition:
        sep, parts = definition["Fn::Join"]
        if not all(isinstance(p, str) for p in parts):
            raise CheckFailed(
                f"{machine}: the definition holds intrinsic functions; keep ARNs in DefinitionSubstitutions"
            )
        text = sep.join(parts)
    elif isinstance(definition, str):
        text = definition
    else:
        raise CheckFailed(f"{machine}: unexpected DefinitionString shape {type(definition).__name__}")
    used = set(PLACEHOLDER.findall(text))
    missing = used - substitutions.keys()
    unused = substitutions.keys() - used
    if missing:
        raise CheckFailed(
            f"{machine}: the definition uses {sorted(missing)} but DefinitionSubstitutions does not set them"
        )
    if unused:
        raise CheckFailed(f"{machine}: DefinitionSubstitutions sets {sorted(unused)}, which the definition never uses")
    pieces: list = []
    last = 0
    for m in PLACEHOLDER.finditer(text):
        pieces.append(text[last : m.start()])
        pieces.append(substitutions[m.group(1)])
        last = m.end()
    pieces.append(text[last:])
    return {"Fn::Join": ["", [p for p in pieces if p != ""]]}


def without_refs_to(gone: set[str], owner: str, node):
    """Properties with references to dropped resources: Fn::Sub text gets a placeholder;
    a Ref or Fn::GetAtt to one is an error (dropping it would change the wiring)."""
    if isinstance(node, dict):
        if "Ref" in node and node["Ref"] in gone:
            raise CheckFailed(f"moto copy: {owner} refers to {node['Ref']}, whose type moto cannot create")
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"][0] if isinstance(node["Fn::GetAtt"], list) else node["Fn::GetAtt"].split(".")[0]
            if target in gone:
                raise CheckFailed(f"moto copy: {owner} refers to {target}, whose type moto cannot create")
        if "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            text, values = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
            for name in gone:
                text = re.sub(r"\$\{" + re.escape(name) + r"(\.[A-Za-z]+)?\}", f"dropped-in-moto-copy:{name}", text)
            return {"Fn::Sub": text if not values else [text, without_refs_to(gone, owner, values)]}
        return {k: without_refs_to(gone, owner, v) for k, v in node.items()}
    if isinstance(node, list):
        return [without_refs_to(gone, owner, v) for v in node]
    return node


# ------------------------------------------------------------------ moto


class MotoServer:
    """A moto server of its own on a free 127.0.0.1 port, stopped on exit."""

    def __enter__(self) -> str:
        self.log = tempfile.TemporaryFile()
        for _ in range(3):  # a free port can be taken between asking and binding
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return f"http://127.0.0.1:{port}"
                except OSError:
                    time.sleep(0.2)
            self.stop()
        self.log.seek(0)
        raise SystemExit(f"the moto server did not start:\n{self.log.read().decode(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log.close()


class Clients:
    def __init__(self, endpoint: str):
        cfg = Config(retries={"max_attempts": 2})
        kw = dict(
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=cfg,
        )
        services = ("cloudformation", "s3", "lambda", "stepfunctions", "sqs", "iam", "dynamodb", "events", "ec2", "ecs")
        for service in services:
            setattr(self, service.replace("lambda", "lambda_"), boto3.client(service, **kw))


def upload_code(aws: Clients) -> None:
    """A zip with an executable `bootstrap`, the shape of a cargo-lambda artifact."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'stand-in for the moto stack check' >&2\nexit 1\n")
    aws.s3.create_bucket(Bucket=CODE_BUCKET)
    aws.s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buf.getvalue())


def worker_network(aws: Clients) -> list[dict]:
    """The stack's parameters for the Fargate worker: a VPC and two subnets made in moto
    (the worker's security group is made in that VPC), and an example ECR image URI."""
    vpc = aws.ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        aws.ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for cidr, zone in (("10.42.1.0/24", "a"), ("10.42.2.0/24", "b"))
    ]
    return [
        {"ParameterKey": "WorkerImageUri", "ParameterValue": WORKER_IMAGE},
        {"ParameterKey": "WorkerSubnets", "ParameterValue": ",".join(subnets)},
        {"ParameterKey": "WorkerVpcId", "ParameterValue": vpc},
    ]


def create_stack(aws: Clients, template: dict, parameters: list[dict], say) -> None:
    try:
        aws.cloudformation.create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(template),
            Parameters=parameters,
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
    except Exception as e:  # moto raises while parsing: a wrong Ref or GetAtt ends here
        raise CheckFailed(f"moto: create_stack failed: {e}") from e
    deadline = time.monotonic() + 120
    while True:
        status = aws.cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        if status == "CREATE_COMPLETE":
            return
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            events = aws.cloudformation.describe_stack_events(StackName=STACK)["StackEvents"]
            failed = [e for e in events if "FAILED" in e.get("ResourceStatus", "")]
            for e in failed:
                say(f"  {e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}")
            raise CheckFailed(f"moto: stack {STACK} ended {status}, not CREATE_COMPLETE")
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
