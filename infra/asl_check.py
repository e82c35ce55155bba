"""Validates every state-machines/*.asl.json with asl-validator, after substitution.

Run by scripts/check-infra with .venv/bin/python. Each definition must be deployed by one
AWS::Serverless::StateMachine of infra/template.yaml (DefinitionUri); its `${Name}`
placeholders are replaced with plausible ARNs derived from that resource's
DefinitionSubstitutions (a GetAtt of a function becomes a Lambda ARN, a Ref of a state
machine a state machine ARN, the worker's cluster, task definition and security group
their ARNs and id, a Join of a list parameter example values joined, a Sub string is
expanded with example pseudo parameters), so asl-validator checks the Resource ARNs as AWS
will see them. A placeholder without a
substitution, or a substitution the definition never uses, is an error.

Exit status: 0 when every definition is valid, 1 otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "skein",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_:]+)\}")


def main() -> int:
    if not VALIDATOR.exists():
        print(
            f"asl check: {VALIDATOR} is missing; run scripts/setup (it installs asl-validator from package.json)",
            file=sys.stderr,
        )
        return 2
    template, matches = decode(str(INFRA / "template.yaml"))
    if template is None or matches:
        print(f"asl check: infra/template.yaml does not parse: {[str(m) for m in matches]}", file=sys.stderr)
        return 1
    resources = template["Resources"]
    deployed = {}
    for name, res in resources.items():
        if res["Type"] == "AWS::Serverless::StateMachine":
            uri = res["Properties"].get("DefinitionUri")
            deployed[(INFRA / str(uri)).resolve()] = (name, res["Properties"].get("DefinitionSubstitutions", {}))
    failed = 0
    files = sorted((ROOT / "state-machines").glob("*.asl.json"))
    if not files:
        print("asl check: no state-machines/*.asl.json", file=sys.stderr)
        return 1
    for path in files:
        rel = path.relative_to(ROOT)
        if path.resolve() not in deployed:
            print(f"FAILED: {rel}: no state machine of infra/template.yaml deploys it (DefinitionUri)")
            failed += 1
            continue
        machine, subs = deployed[path.resolve()]
        text = path.read_text()
        used = set(PLACEHOLDER.findall(text))
        missing, unused = used - subs.keys(), subs.keys() - used
        if missing or unused:
            print(
                f"FAILED: {rel}: {machine}: placeholders without substitution {sorted(missing)}, substitutions never used {sorted(unused)}"
            )
            failed += 1
            continue
        values = {k: plausible(k, v, resources) for k, v in subs.items()}
        substituted = PLACEHOLDER.sub(lambda m, v=values: v[m.group(1)], text)
        json.loads(substituted)  # still JSON: the values hold no quotes
        with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as f:
            f.write(substituted)
        out = subprocess.run([str(VALIDATOR), "--json-path", f.name], capture_output=True, text=True)
        Path(f.name).unlink()
        report = (out.stdout + out.stderr).strip().replace(f.name, str(rel))
        if out.returncode == 0:
            print(f"ok: {rel} ({machine}): {report}")
        else:
            print(f"FAILED: {rel} ({machine}): {report}")
            failed += 1
    failed += check_console_samples()
    return 1 if failed else 0


def input_fields(definition: dict) -> set[str]:
    """Top-level input fields a definition reads (`$.x` in its own states, not in Map item
    processors), less those its states write (ResultPath, or a ResultSelector's output)."""
    read: set[str] = set()
    written: set[str] = set()
    for state in definition["States"].values():
        # ResultSelector reads the task's result, the processors read items: not the input.
        outer = {k: v for k, v in state.items() if k not in ("ItemProcessor", "Iterator", "Branches", "ResultSelector")}
        read.update(re.findall(r"(?<!\$)\$\.([A-Za-z_][A-Za-z0-9_]*)", json.dumps(outer)))
        result_path = state.get("ResultPath")
        if isinstance(result_path, str) and result_path.startswith("$."):
            written.add(result_path[2:].split(".")[0])
        for catch in state.get("Catch", []):
            if isinstance(catch.get("ResultPath"), str) and catch["ResultPath"].startswith("$."):
                written.add(catch["ResultPath"][2:].split(".")[0])
        if "ResultPath" not in state and isinstance(state.get("ResultSelector"), dict):
            written.update(k.removesuffix(".$") for k in state["ResultSelector"])
    return read - written


def check_console_samples() -> int:
    """samples/console/: each execution input carries exactly the fields its state machine
    reads; the run request (trigger input) the same, with runId optional."""
    console = ROOT / "samples" / "console"
    machines = {
        "migration-run.json": "migration-run",
        "dataset-migration.json": "dataset-migration",
        "run-request.json": "migration-run",
    }
    failed = 0
    for sample, machine in machines.items():
        path = console / sample
        rel = path.relative_to(ROOT)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"FAILED: {rel}: {e}")
            failed += 1
            continue
        want = input_fields(json.loads((ROOT / "state-machines" / f"{machine}.asl.json").read_text()))
        optional = {"runId"} if sample == "run-request.json" else set()
        missing, extra = want - optional - data.keys(), data.keys() - want
        problems = []
        if missing:
            problems.append(f"lacks {sorted(missing)}")
        if extra:
            problems.append(f"has fields {machine} never reads: {sorted(extra)}")
        specs = data.get("specs")
        if specs is not None and not (isinstance(specs, str) and specs.startswith("s3://") and specs.endswith("/")):
            problems.append(f"specs {specs!r} is not an s3:// prefix ending in /")
        run_id = data.get("runId")
        if run_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", str(run_id)):
            problems.append(f"runId {run_id!r} cannot be part of an execution name")
        if problems:
            print(f"FAILED: {rel} (input of {machine}): {'; '.join(problems)}")
            failed += 1
        else:
            print(f"ok: {rel} is an input of {machine} ({', '.join(sorted(data))})")
    return failed


# Example values of the template's parameters that a substitution may name.
PARAMETERS = {
    "WorkerSubnets": ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"],
}


def plausible(key: str, value, resources: dict) -> str:
    """The ARN, URL or id a substitution resolves to in a stack named `skein` in eu-west-1."""
    region, account = PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target, attribute = value["Fn::GetAtt"][0], value["Fn::GetAtt"][1]
        kind = resources[target]["Type"]
        if kind == "AWS::Serverless::Function":
            return f"arn:aws:lambda:{region}:{account}:function:skein-{kebab(target.removesuffix('Function'))}"
        if kind == "AWS::ECS::Cluster" and attribute == "Arn":
            return f"arn:aws:ecs:{region}:{account}:cluster/skein-{kebab(target.removesuffix('Cluster'))}"
        if kind == "AWS::EC2::SecurityGroup" and attribute == "GroupId":
            return "sg-0123456789abcdef0"
    if isinstance(value, dict) and "Ref" in value:
        target = value["Ref"]
        kind = resources[target]["Type"]
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{region}:{account}:stateMachine:skein-{kebab(target.removesuffix('StateMachine'))}"
        if kind == "AWS::ECS::TaskDefinition":
            return f"arn:aws:ecs:{region}:{account}:task-definition/skein-{kebab(target.removesuffix('TaskDefinition'))}:1"
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        if isinstance(parts, dict) and parts.get("Ref") in PARAMETERS:
            return sep.join(PARAMETERS[parts["Ref"]])
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return PLACEHOLDER.sub(lambda m: PSEUDO[m.group(1)], value["Fn::Sub"])
    raise SystemExit(f"asl check: substitution {key}: cannot make a plausible value of {value!r}")


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


if __name__ == "__main__":
    sys.exit(main())
