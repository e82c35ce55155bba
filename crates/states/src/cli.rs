//! `skein states …`: the ASL engine on the command line, for anyone's state machines.
//!
//! Contract (other programs depend on it): `skein states run DEFINITION --input INPUT`
//! prints, as the LAST line of stdout, one JSON object
//! `{"status", "output" | "error" + "cause", "executionArn"}`.
//!
//! Tasks are bound by a bindings file (`--bindings`):
//!
//! ```json
//! {"substitutions": {"MigrateFunctionArn": "arn:aws:lambda:local:0:function:migrate"},
//!  "functions": {"migrate": {"command": ["./migrate.sh"]}},
//!  "resources": {"arn:aws:states:::sqs:sendMessage": {"command": ["./send.sh"]}},
//!  "s3Root": "data/"}
//! ```
//!
//! A command gets the payload as JSON on stdin (and the task token, if any, in
//! `SKEIN_TASK_TOKEN`) and prints its result as JSON on stdout; a non-zero exit fails the
//! task with `errorType` / `errorMessage` from stdout if it printed them (Lambda's error
//! shape), else `States.TaskFailed` with stderr as the cause.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::definition::Definition;
use crate::engine::{Engine, Failure, Handlers, Options, TaskCall, TaskHandler, history_json};
pub use crate::error::Usage;
use crate::limits;
use crate::mock::MockCase;
use crate::status::ExecutionStatus;
use crate::store::{Op, Store, TokenAnswer};

/// `skein states` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StatesCommand {
    /// Run a state machine to its end; the last stdout line is the result as JSON.
    Run(RunArgs),
    /// Continue an execution that was interrupted (e.g. the process was killed).
    Resume {
        /// Execution id or ARN.
        execution: String,
    },
    /// The event history of an execution (like GetExecutionHistory).
    History {
        /// Execution id or ARN.
        execution: String,
    },
    /// List executions, newest first.
    List,
    /// Stop a running execution: it ends ABORTED (like StopExecution).
    Stop {
        /// Execution id or ARN.
        execution: String,
        #[arg(long, default_value = "")]
        error: String,
        #[arg(long, default_value = "")]
        cause: String,
    },
    /// Check a definition: every structural error with its JSON pointer.
    Validate {
        /// The definition (JSON file).
        definition: PathBuf,
        /// Bindings file whose `substitutions` fill `${…}` placeholders.
        #[arg(long)]
        bindings: Option<PathBuf>,
    },
    /// Answer a task token with the task's output (JSON).
    SendTaskSuccess {
        token: String,
        /// The output: JSON text, or @FILE.
        output: String,
    },
    /// Fail the task waiting on a token.
    SendTaskFailure {
        token: String,
        #[arg(long, default_value = "States.TaskFailed")]
        error: String,
        #[arg(long, default_value = "")]
        cause: String,
    },
    /// Tell the task waiting on a token that its worker is alive.
    SendTaskHeartbeat { token: String },
    /// Durable transitions per second: a 10,000-item inline Map of Pass states and a chain
    /// of 10,000 Pass states.
    Bench {
        /// Items of the Map and states of the chain.
        #[arg(long, default_value_t = 10_000)]
        n: usize,
    },
}

/// `skein states run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The definition (ASL JSON file).
    pub definition: PathBuf,
    /// The execution input: a JSON file, or `-` for stdin.
    #[arg(long)]
    pub input: Option<String>,
    /// Bindings: `${…}` substitutions, Task handlers, the local S3 root.
    #[arg(long)]
    pub bindings: Option<PathBuf>,
    /// Step Functions Local mock config (needs --state-machine-name and --test-case).
    #[arg(long, requires_all = ["state_machine_name", "test_case"])]
    pub mock_config: Option<PathBuf>,
    /// The state machine's name (in the mock config; also the execution ARN's).
    #[arg(long)]
    pub state_machine_name: Option<String>,
    /// The mock config's test case.
    #[arg(long)]
    pub test_case: Option<String>,
    /// Lift AWS's quotas (256 KiB payloads, 25,000 history events), for machines not
    /// meant for AWS; kept on resume.
    #[arg(long)]
    pub no_quotas: bool,
}

/// Runs a `skein states` subcommand with the store under `store_dir`; returns the exit code
/// (0 succeeded, 1 the execution failed / timed out / aborted, 2 bad usage or definition).
pub async fn run(cmd: StatesCommand, store_dir: &Path, json_out: bool) -> Result<i32, Usage> {
    let open = || Store::open(&store_dir.join("states.db")).map_err(|e| Usage(e.to_string()));
    match cmd {
        StatesCommand::Run(args) => {
            let mut bindings = Bindings::load(args.bindings.as_deref())?;
            if args.no_quotas {
                if !bindings.raw.is_object() {
                    bindings.raw = serde_json::json!({});
                }
                bindings.raw["noQuotas"] = Value::Bool(true);
            }
            let definition = bindings.definition(&args.definition)?;
            let input = read_input(args.input.as_deref())?;
            let machine = args.state_machine_name.clone().unwrap_or_else(|| {
                args.definition
                    .file_stem()
                    .map(|s| s.to_string_lossy().trim_end_matches(".asl").to_string())
                    .unwrap_or_else(|| "machine".into())
            });
            let mock = match (&args.mock_config, &args.test_case) {
                (Some(file), Some(case)) => {
                    Some(MockCase::load(file, &machine, case).map_err(|e| Usage(e.to_string()))?)
                }
                _ => None,
            };
            let engine = Engine::new(open()?, bindings.handlers(), bindings.options());
            let outcome = engine
                .start(&machine, definition, input, mock, bindings.raw.clone())
                .await
                .map_err(|e| Usage(e.to_string()))?;
            Ok(print_outcome(&outcome))
        }
        StatesCommand::Resume { execution } => {
            let store = open()?;
            let exec = find(&store, &execution, store_dir)?;
            let raw = exec.config.get("config").cloned().unwrap_or(Value::Null);
            let bindings = Bindings::from_value(raw)?;
            let engine = Engine::new(store, bindings.handlers(), bindings.options());
            let outcome = engine
                .resume(&execution)
                .await
                .map_err(|e| Usage(e.to_string()))?;
            Ok(print_outcome(&outcome))
        }
        StatesCommand::History { execution } => {
            let store = open()?;
            let exec = find(&store, &execution, store_dir)?;
            let events = store.events(&exec.id).map_err(|e| Usage(e.to_string()))?;
            if json_out {
                println!("{}", history_json(&events));
            } else {
                for e in &events {
                    let name = e.details.get("name").and_then(Value::as_str).unwrap_or("");
                    println!(
                        "{:>5}  {}  {:<28} {:<24} {}",
                        e.id, e.at, e.kind, name, e.frame
                    );
                }
            }
            Ok(0)
        }
        StatesCommand::List => {
            let store = open()?;
            let list = store.executions().map_err(|e| Usage(e.to_string()))?;
            if json_out {
                let items: Vec<Value> = list
                    .iter()
                    .map(|e| {
                        json!({"executionArn": e.arn, "name": e.id, "stateMachine": e.name, "status": e.status,
                               "startDate": e.started_at, "stopDate": e.stopped_at})
                    })
                    .collect();
                println!("{}", json!({ "executions": items }));
            } else {
                for e in &list {
                    println!("{:<10} {:<24} {}  {}", e.status, e.name, e.started_at, e.id);
                }
            }
            Ok(0)
        }
        StatesCommand::Stop {
            execution,
            error,
            cause,
        } => {
            let store = open()?;
            let exec = find(&store, &execution, store_dir)?;
            if exec.status != ExecutionStatus::Running {
                return Err(Usage(format!(
                    "execution `{}` already ended {}",
                    exec.id, exec.status
                )));
            }
            store
                .commit(vec![
                    Op::Event {
                        execution: exec.id.clone(),
                        frame: "0".into(),
                        kind: "ExecutionAborted".into(),
                        details: json!({"error": error, "cause": cause}),
                    },
                    Op::Abort {
                        id: exec.id.clone(),
                        error,
                        cause,
                    },
                ])
                .await
                .map_err(|e| Usage(e.to_string()))?;
            eprintln!("stopped {}", exec.arn);
            Ok(0)
        }
        StatesCommand::Validate {
            definition,
            bindings,
        } => {
            let bindings = Bindings::load(bindings.as_deref())?;
            let doc = bindings.definition(&definition)?;
            match Definition::parse(&doc) {
                Ok(def) => {
                    if json_out {
                        println!("{}", json!({"valid": true, "errors": []}));
                    } else {
                        println!(
                            "{}: valid ({} states at the top level)",
                            definition.display(),
                            def.states.len()
                        );
                    }
                    Ok(0)
                }
                Err(errors) => {
                    if json_out {
                        println!("{}", json!({"valid": false, "errors": errors.0}));
                    } else {
                        for e in &errors.0 {
                            println!("{}: {e}", definition.display());
                        }
                        eprintln!("{} problem(s)", errors.0.len());
                    }
                    Ok(2)
                }
            }
        }
        StatesCommand::SendTaskSuccess { token, output } => {
            let text = match output.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .map_err(|e| Usage(format!("cannot read {file}: {e}")))?,
                None => output,
            };
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| Usage(format!("the task output is not JSON: {e}")))?;
            answer(open()?, &token, TokenAnswer::Success(value))
        }
        StatesCommand::SendTaskFailure {
            token,
            error,
            cause,
        } => answer(open()?, &token, TokenAnswer::Failure { error, cause }),
        StatesCommand::SendTaskHeartbeat { token } => {
            answer(open()?, &token, TokenAnswer::Heartbeat)
        }
        StatesCommand::Bench { n } => crate::bench::run(&store_dir.join("states-bench.db"), n)
            .await
            .map(|()| 0)
            .map_err(|e| Usage(e.to_string())),
    }
}

/// An execution by id or ARN, or a usage error naming the store.
fn find(
    store: &Store,
    execution: &str,
    store_dir: &Path,
) -> Result<crate::store::Execution, Usage> {
    store
        .execution(execution)
        .map_err(|e| Usage(e.to_string()))?
        .ok_or_else(|| {
            Usage(format!(
                "execution `{execution}` is not in {}; `skein states list` shows the known ones",
                store_dir.display()
            ))
        })
}

fn answer(store: Store, token: &str, answer: TokenAnswer) -> Result<i32, Usage> {
    let record = store
        .answer_token(token, answer)
        .map_err(|e| Usage(e.to_string()))?;
    eprintln!(
        "token answered ({}); a running `skein states run` picks it up, else run `skein states resume {}`",
        record.status, record.execution
    );
    Ok(0)
}

fn print_outcome(outcome: &crate::engine::Outcome) -> i32 {
    let line = serde_json::to_string(outcome).unwrap_or_else(|_| "{}".into());
    println!("{line}");
    if outcome.status == ExecutionStatus::Succeeded {
        0
    } else {
        1
    }
}

/// Reads the execution input (a file, `-` for stdin, `{}` when absent). Input over the
/// payload quota is refused before it is parsed, and so before anything starts.
fn read_input(input: Option<&str>) -> Result<Value, Usage> {
    let name = input.unwrap_or("-");
    let mut bytes = Vec::new();
    // one byte past the quota is enough to know it is too large
    let cap = limits::MAX_PAYLOAD_BYTES as u64 + 1;
    let read = match input {
        None => return Ok(json!({})),
        Some("-") => std::io::stdin().take(cap).read_to_end(&mut bytes),
        Some(file) => std::fs::File::open(file).and_then(|f| f.take(cap).read_to_end(&mut bytes)),
    };
    read.map_err(|e| Usage(format!("cannot read the input {name}: {e}")))?;
    if bytes.len() > limits::MAX_PAYLOAD_BYTES {
        let size = match input {
            Some(file) if file != "-" => std::fs::metadata(file)
                .map(|m| format!("{} bytes", m.len()))
                .unwrap_or_else(|_| "too large".into()),
            _ => format!("over {} bytes", limits::MAX_PAYLOAD_BYTES),
        };
        return Err(Usage(format!(
            "the input {name} is {size}, over the {} bytes (256 KiB of UTF-8) Step Functions accepts as an execution input (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html); pass large data by reference, e.g. as an S3 URI",
            limits::MAX_PAYLOAD_BYTES
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| Usage(format!("the input {name} is not JSON: {e}")))
}

/// A bindings file: substitutions, command handlers, the local S3 root.
pub struct Bindings {
    raw: Value,
    base: PathBuf,
}

impl Bindings {
    fn load(path: Option<&Path>) -> Result<Bindings, Usage> {
        let Some(path) = path else {
            return Bindings::from_value(Value::Null);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Usage(format!("cannot read bindings {}: {e}", path.display())))?;
        let mut raw: Value = serde_json::from_str(&text)
            .map_err(|e| Usage(format!("bindings {} is not JSON: {e}", path.display())))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        if let Value::Object(m) = &mut raw {
            m.insert("baseDir".into(), Value::String(base.display().to_string()));
        }
        for key in raw
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if ![
                "substitutions",
                "functions",
                "resources",
                "s3Root",
                "baseDir",
            ]
            .contains(&key.as_str())
            {
                return Err(Usage(format!(
                    "bindings {}: unknown field `{key}`; allowed: substitutions, functions, resources, s3Root",
                    path.display()
                )));
            }
        }
        Bindings::from_value(raw)
    }

    fn from_value(raw: Value) -> Result<Bindings, Usage> {
        let base = raw
            .get("baseDir")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")));
        Ok(Bindings { raw, base })
    }

    fn options(&self) -> Options {
        let s3_root = self
            .raw
            .get("s3Root")
            .and_then(Value::as_str)
            .map(|r| self.base.join(r))
            .unwrap_or_else(|| self.base.clone());
        let defaults = Options::default();
        Options {
            s3_root,
            quotas: defaults.quotas && self.raw.get("noQuotas") != Some(&Value::Bool(true)),
            ..defaults
        }
    }

    fn handlers(&self) -> Handlers {
        let mut h = Handlers::default();
        for (section, is_function) in [("functions", true), ("resources", false)] {
            if let Some(map) = self.raw.get(section).and_then(Value::as_object) {
                for (name, spec) in map {
                    let command: Vec<String> = spec
                        .get("command")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    let handler = Arc::new(CommandHandler {
                        command,
                        dir: self.base.clone(),
                    });
                    if is_function {
                        h.function(name, handler);
                    } else {
                        h.resource(name, handler);
                    }
                }
            }
        }
        h
    }

    /// Reads a definition and fills its `${Name}` placeholders.
    fn definition(&self, path: &Path) -> Result<Value, Usage> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Usage(format!("{} is not JSON: {e}", path.display())))?;
        let subs = self.raw.get("substitutions").cloned().unwrap_or(json!({}));
        let mut missing = Vec::new();
        let doc = substitute(doc, &subs, &mut missing);
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            return Err(Usage(format!(
                "{}: no substitution for {}; add them under `substitutions` in the bindings file (--bindings)",
                path.display(),
                missing
                    .iter()
                    .map(|m| format!("${{{m}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(doc)
    }
}

/// Replaces `${Name}` in every string of `doc` (values and keys) from `subs`.
pub fn substitute(doc: Value, subs: &Value, missing: &mut Vec<String>) -> Value {
    let fill = |s: &str, missing: &mut Vec<String>| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => {
                    let name = &rest[start + 2..start + end];
                    match subs.get(name) {
                        Some(Value::String(v)) => out.push_str(v),
                        Some(v) => out.push_str(&v.to_string()),
                        None => {
                            missing.push(name.to_string());
                            out.push_str(&rest[start..start + end + 1]);
                        }
                    }
                    rest = &rest[start + end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    };
    match doc {
        Value::String(s) => Value::String(fill(&s, missing)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| substitute(v, subs, missing))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (fill(&k, missing), substitute(v, subs, missing)))
                .collect(),
        ),
        other => other,
    }
}

/// A Task bound to a local command.
struct CommandHandler {
    command: Vec<String>,
    dir: PathBuf,
}

#[async_trait]
impl TaskHandler for CommandHandler {
    async fn call(&self, call: &TaskCall) -> Result<Value, Failure> {
        let Some((program, args)) = self.command.split_first() else {
            return Err(Failure {
                error: "States.TaskFailed".into(),
                cause: format!(
                    "the binding of state `{}` has an empty `command`",
                    call.state
                ),
            });
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("SKEIN_TASK_STATE", &call.state)
            .env("SKEIN_EXECUTION_ARN", &call.execution)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = &call.token {
            cmd.env("SKEIN_TASK_TOKEN", t);
        }
        let fail = |cause: String| Failure {
            error: "States.TaskFailed".into(),
            cause,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start `{program}`: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let payload = call.payload.to_string();
            let _ = stdin.write_all(payload.as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("`{program}` failed to run: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let parsed: Option<Value> = serde_json::from_str(stdout.trim()).ok();
        if out.status.success() {
            return match (stdout.trim().is_empty(), parsed) {
                (true, _) => Ok(Value::Null),
                (false, Some(v)) => Ok(v),
                (false, None) => Err(fail(format!(
                    "`{program}` printed something that is not JSON: {}",
                    stdout.trim()
                ))),
            };
        }
        match parsed
            .as_ref()
            .and_then(|v| v.get("errorType"))
            .and_then(Value::as_str)
        {
            Some(kind) => Err(Failure {
                error: kind.to_string(),
                cause: parsed
                    .as_ref()
                    .and_then(|v| v.get("errorMessage"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }),
            None => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                Err(fail(format!(
                    "`{program}` exited with {}: {}",
                    out.status,
                    stderr.trim()
                )))
            }
        }
    }
}
