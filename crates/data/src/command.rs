//! Command transforms (`transform.command`): a migration script in any language. skein
//! streams the source to the command's stdin as an Arrow IPC stream (record batches in
//! order, as they are read) and reads its output, an Arrow IPC stream, from its stdout.
//! The output is a table like a SQL transform's ([`command_frame`]), so staging,
//! checksums, rules, sample queries and diffs run on it unchanged.
//!
//! Memory stays bounded: batches cross two bounded channels and the pipes, so a slow
//! command slows the source's reading (back-pressure), and nothing holds a whole dataset.
//! A non-zero exit, output that is no Arrow IPC stream, a timeout, or a command that
//! cannot start fails the transform naming the command, the exit status and the last
//! lines of its stderr.
//!
//! The output's schema is needed to plan: skein starts the command once and reads only the
//! schema at the head of its output, then stops it. Each scan of the output (staging,
//! and each sample query of a verification) runs the command again over the source.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use skein_core::load::SpecFile;
use skein_core::spec::Transform;

use crate::error::{Error, Result};

/// Lines of the command's stderr kept for an error.
const STDERR_LINES: usize = 20;
/// Batches in flight between the source, the command and the writer, each way.
const IN_FLIGHT: usize = 2;

/// The run a session works for, given to a command as `SKEIN_RUN_ID` (see [`for_run`]).
#[derive(Debug)]
struct RunId(String);

/// Says that `ctx` works for run `run`: a command transform planned in it gets
/// `SKEIN_RUN_ID=run` (staging and verification set it; `skein diff` and `inspect`, which
/// belong to no run, leave it empty).
pub fn for_run(ctx: &SessionContext, run: &str) {
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(RunId(run.to_string())));
}

/// The spec's command transform as a table over the registered `source`.
pub async fn command_frame(
    ctx: &SessionContext,
    file: &SpecFile,
    t: &Transform,
) -> Result<DataFrame> {
    let dataset = file.name().to_string();
    let command = t.command.clone().unwrap_or_default();
    let Some(program) = command.first() else {
        return Err(Error::Transform {
            dataset,
            message: "spec.transform.command names no program".into(),
        });
    };
    let timeout = t.timeout().map_err(|message| Error::Transform {
        dataset: dataset.clone(),
        message,
    })?;
    // A spec in the working directory has an empty base directory.
    let dir = match file.base_dir() {
        d if d.as_os_str().is_empty() => PathBuf::from("."),
        d => d.to_path_buf(),
    };
    let mut env: Vec<(String, String)> = vec![
        ("SKEIN_DATASET".into(), dataset.clone()),
        (
            "SKEIN_RUN_ID".into(),
            ctx.state()
                .config()
                .get_extension::<RunId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
        ),
        ("SKEIN_SOURCE".into(), file.spec.spec.source.uri.clone()),
        ("SKEIN_TARGET".into(), file.spec.spec.target.uri.clone()),
        (
            "SKEIN_PARAMS".into(),
            serde_json::to_string(&t.params).unwrap_or_default(),
        ),
    ];
    for (k, v) in &t.params {
        let name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.push((format!("SKEIN_PARAM_{name}"), v.clone()));
    }
    env.extend(t.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let input = ctx
        .table(crate::sqlguard::SOURCE_TABLE)
        .await
        .map_err(|e| Error::Transform {
            dataset: dataset.clone(),
            message: e.strip_backtrace(),
        })?;
    let runner = Arc::new(Runner {
        dataset: dataset.clone(),
        program: resolve(program, &dir),
        shown: command.join(" "),
        args: command[1..].to_vec(),
        dir,
        env,
        timeout,
        input,
    });
    let schema = runner.clone().output_schema().await?;
    let table = StreamingTable::try_new(
        schema.clone(),
        vec![Arc::new(CommandPartition { runner, schema })],
    )
    .map_err(|e| Error::Internal(e.strip_backtrace()))?;
    ctx.read_table(Arc::new(table))
        .map_err(|e| Error::Transform {
            dataset,
            message: e.strip_backtrace(),
        })
}

/// A program named with a path relative to the spec's directory is found there; a bare
/// name is looked up on `PATH`.
pub fn resolve(program: &str, dir: &Path) -> PathBuf {
    let p = Path::new(program);
    if p.is_relative() && program.contains('/') {
        dir.join(p)
    } else {
        p.to_path_buf()
    }
}

/// Whether `program` can be started: a file (executable) at its path, or on `PATH`.
pub fn exists(program: &str, dir: &Path) -> bool {
    let p = resolve(program, dir);
    if p.components().count() > 1 || p.is_absolute() {
        return p.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(&p).is_file()))
}

struct Runner {
    dataset: String,
    program: PathBuf,
    /// The command as the spec wrote it, for messages.
    shown: String,
    args: Vec<String>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    timeout: Duration,
    /// The source, fed to the command.
    input: DataFrame,
}

/// A running command: its output, read batch by batch, and how it ended.
struct Running {
    child: Arc<Mutex<Child>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    started: Instant,
}

impl Runner {
    fn failure(&self, what: String, stderr: &Mutex<VecDeque<String>>) -> Error {
        let lines: Vec<String> = stderr
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        let tail = if lines.is_empty() {
            "(nothing on stderr)".to_string()
        } else {
            format!("its stderr ended with:\n{}", lines.join("\n"))
        };
        Error::Transform {
            dataset: self.dataset.clone(),
            message: format!("the command `{}` {what}; {tail}", self.shown),
        }
    }

    /// Starts the command with the source flowing into its stdin; its stdout is returned
    /// for reading.
    fn start(self: &Arc<Self>) -> Result<(Running, std::process::ChildStdout)> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Transform {
                dataset: self.dataset.clone(),
                message: format!(
                    "the command `{}` cannot start ({e}); check spec.transform.command (a relative path is the spec directory's)",
                    self.shown
                ),
            })?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Internal("no stdout pipe".into()))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let keep = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                    if let Ok(mut k) = keep.lock() {
                        if k.len() == STDERR_LINES {
                            k.pop_front();
                        }
                        k.push_back(line);
                    }
                }
            });
        }
        // The source into stdin: batches from the engine cross a bounded channel to a
        // thread that writes the IPC stream (the pipe blocks it while the command is busy).
        if let Some(stdin) = stdin {
            let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(IN_FLIGHT);
            let schema: SchemaRef = Arc::new(self.input.schema().as_arrow().clone());
            std::thread::spawn(move || {
                let Ok(mut w) = StreamWriter::try_new(stdin, &schema) else {
                    return;
                };
                for batch in rx {
                    // The command stopped reading (it ended, or was stopped): no more input.
                    if w.write(&batch).is_err() {
                        return;
                    }
                }
                let _ = w.finish();
            });
            let input = self.input.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = input.execute_stream().await else {
                    return;
                };
                while let Some(Ok(batch)) = stream.next().await {
                    let tx = tx.clone();
                    let sent = tokio::task::spawn_blocking(move || tx.send(batch).is_ok()).await;
                    if !matches!(sent, Ok(true)) {
                        return;
                    }
                }
            });
        }
        Ok((
            Running {
                child: Arc::new(Mutex::new(child)),
                stderr,
                started: Instant::now(),
            },
            stdout,
        ))
    }

    /// The schema at the head of the command's output; the command is stopped after it.
    async fn output_schema(self: Arc<Self>) -> Result<SchemaRef> {
        let (running, stdout) = self.start()?;
        let child = running.child.clone();
        let timeout = self.timeout;
        let read = tokio::task::spawn_blocking(move || open_ipc(stdout).map(|r| r.schema()));
        let read = tokio::time::timeout(timeout, read).await;
        // A command that failed before its output: its exit status says more.
        if matches!(read, Ok(Ok(Err(_))))
            && let Some(e) = self.exited_badly(&running)
        {
            stop(&child);
            return Err(e);
        }
        stop(&child);
        match read {
            Ok(Ok(Ok(schema))) => Ok(schema),
            Ok(Ok(Err(e))) => Err(self.failure(
                format!("wrote no Arrow IPC stream on stdout ({e})"),
                &running.stderr,
            )),
            Ok(Err(e)) => Err(Error::Internal(e.to_string())),
            Err(_) => Err(self.failure(
                format!(
                    "wrote no schema within {} s (spec.transform.timeout)",
                    timeout.as_secs()
                ),
                &running.stderr,
            )),
        }
    }

    /// The command's output over the whole source, batch by batch; the command's end is
    /// checked after its last batch.
    fn output(
        self: Arc<Self>,
    ) -> impl futures::Stream<Item = std::result::Result<RecordBatch, DataFusionError>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<
            std::result::Result<RecordBatch, DataFusionError>,
        >(IN_FLIGHT);
        let fail = |e: Error| DataFusionError::External(Box::new(e));
        match self.start() {
            Err(e) => {
                let _ = tx.try_send(Err(fail(e)));
            }
            Ok((running, stdout)) => {
                let runner = self.clone();
                // The deadline: the command is stopped when it passes.
                let child = running.child.clone();
                let deadline = tokio::spawn({
                    let timeout = self.timeout;
                    async move {
                        tokio::time::sleep(timeout).await;
                        stop(&child);
                    }
                });
                std::thread::spawn(move || {
                    let reader = match open_ipc(stdout) {
                        Ok(r) => r,
                        Err(e) => {
                            let ended = runner.ended(&running, runner.timeout);
                            let e = ended.unwrap_or_else(|| {
                                runner.failure(
                                    format!("wrote no Arrow IPC stream on stdout ({e})"),
                                    &running.stderr,
                                )
                            });
                            let _ = tx.blocking_send(Err(fail(e)));
                            deadline.abort();
                            return;
                        }
                    };
                    for batch in reader {
                        match batch {
                            Ok(b) => {
                                if tx.blocking_send(Ok(b)).is_err() {
                                    // the reader went away (the query stopped): so does the command
                                    stop(&running.child);
                                    deadline.abort();
                                    return;
                                }
                            }
                            Err(e) => {
                                let ended = runner.ended(&running, runner.timeout);
                                let e = ended.unwrap_or_else(|| {
                                    runner.failure(
                                        format!(
                                            "wrote a malformed Arrow IPC stream on stdout ({e})"
                                        ),
                                        &running.stderr,
                                    )
                                });
                                stop(&running.child);
                                let _ = tx.blocking_send(Err(fail(e)));
                                deadline.abort();
                                return;
                            }
                        }
                    }
                    if let Some(e) = runner.ended(&running, runner.timeout) {
                        let _ = tx.blocking_send(Err(fail(e)));
                    }
                    deadline.abort();
                });
            }
        }
        tokio_stream(rx)
    }

    /// The command's failure if it ended with a non-zero status within a moment (it
    /// closed its output because it failed).
    fn exited_badly(&self, running: &Running) -> Option<Error> {
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let polled = running.child.lock().ok().map(|mut c| c.try_wait());
            match polled {
                Some(Ok(Some(status))) if status.success() => return None,
                Some(Ok(Some(_))) => return self.ended(running, self.timeout),
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
        None
    }

    /// Waits for the command to end (after its output ended: it is stopped if it lingers
    /// past the timeout); `Some` error when it did not end well (a non-zero status, a
    /// signal, the timeout).
    fn ended(&self, running: &Running, timeout: Duration) -> Option<Error> {
        let status = loop {
            let polled = running.child.lock().ok().map(|mut c| c.try_wait());
            match polled {
                Some(Ok(Some(status))) => break status,
                Some(Ok(None)) if running.started.elapsed() > timeout => stop(&running.child),
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
                _ => return Some(Error::Internal("the command's process is gone".into())),
            }
        };
        if status.success() {
            return None;
        }
        // Let the stderr thread take the last lines.
        std::thread::sleep(Duration::from_millis(50));
        if running.started.elapsed() >= timeout {
            return Some(self.failure(
                format!(
                    "ran longer than {} s (spec.transform.timeout) and was stopped",
                    timeout.as_secs()
                ),
                &running.stderr,
            ));
        }
        let what = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("was ended by a signal ({status})"),
        };
        Some(self.failure(what, &running.stderr))
    }
}

/// The head of an Arrow IPC stream: the continuation marker and a schema message of a
/// sane length, checked before the reader (which would otherwise take any four bytes as
/// a length and wait for that much) sees the rest.
const MAX_SCHEMA_MESSAGE: u32 = 16 * 1024 * 1024;

/// The command's output, its first bytes checked and put back in front.
type IpcReader<R> = StreamReader<std::io::Chain<std::io::Cursor<Vec<u8>>, R>>;

/// An IPC stream reader over `out`, or what is wrong with its first bytes.
fn open_ipc<R: std::io::Read>(mut out: R) -> std::result::Result<IpcReader<R>, String> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match out.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    if got == 0 {
        return Err("nothing on stdout".into());
    }
    let marker = head[..4] == [0xff; 4];
    let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if got < 8 || !marker || length == 0 || length > MAX_SCHEMA_MESSAGE {
        let shown: String = String::from_utf8_lossy(&head[..got])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect();
        return Err(format!(
            "not an Arrow IPC stream: it starts with `{shown}` (write one with pyarrow.ipc.new_stream(sys.stdout.buffer, schema))"
        ));
    }
    StreamReader::try_new(
        std::io::Read::chain(std::io::Cursor::new(head.to_vec()), out),
        None,
    )
    .map_err(|e| e.to_string())
}

/// Stops a command (it may have ended already).
fn stop(child: &Mutex<Child>) {
    if let Ok(mut c) = child.lock() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The command's output as the one partition of its table.
struct CommandPartition {
    runner: Arc<Runner>,
    schema: SchemaRef,
}

impl std::fmt::Debug for CommandPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command `{}`", self.runner.shown)
    }
}

impl PartitionStream for CommandPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let checked = self.runner.clone().output().map(move |b| {
            let b = b?;
            // One schema for the whole output: a batch of another is refused.
            if b.schema().fields() != schema.fields() {
                return Err(DataFusionError::Execution(format!(
                    "the command's output changed its schema mid-stream: {:?} after {:?}",
                    b.schema().fields(),
                    schema.fields()
                )));
            }
            Ok(b)
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), checked))
    }
}
