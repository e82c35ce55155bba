//! Read models: what the dashboard's JSON API returns and the report renders.
//!
//! A run's datasets come from its plan (the `Plan` state's output in the run execution's
//! history), so a dataset not started yet is shown as queued; where each one stands comes
//! from its child execution (`skein_core::fleet::execution_name(run, dataset)`) and the
//! catalog.

use skein_states::status::ExecutionStatus;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use skein_core::Status;
use skein_core::catalog::{
    Attempt, DatasetRecord, HistoryEntry, RunRecord, VersionAction, VersionRecord,
};
use skein_core::fleet::execution_name;

use crate::Sources;
use crate::error::{Error, Result};
use crate::graph::{self, Graph};

/// One row of the catalog table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRow {
    pub name: String,
    pub owner: Option<String>,
    pub group: String,
    pub criticality: String,
    /// `spec.target.format`: `parquet` or `delta`.
    pub format: String,
    /// `spec.target.glue` as `database.table`, when the target is registered in Glue.
    pub glue: Option<String>,
    pub status: Status,
    pub reason: Option<String>,
    pub version: Option<u64>,
    pub rows: Option<u64>,
    pub last_verification: Option<String>,
    pub updated_at: String,
    /// The run of the last status change.
    pub last_run: Option<String>,
    /// That run's execution of this dataset, when the engine ran it.
    pub execution: Option<String>,
    /// Whether a rollback has a version to go back to (the current one is not the first).
    pub can_roll_back: bool,
}

/// The catalog table, by name.
pub async fn datasets(s: &Sources) -> Result<Vec<DatasetRow>> {
    let mut out = Vec::new();
    for d in s.catalog.datasets().await? {
        let last_run = s
            .catalog
            .history(&d.name)
            .await?
            .into_iter()
            .rev()
            .find_map(|h| h.run_id);
        let execution = match &last_run {
            Some(run) => {
                let id = execution_name(run, &d.name);
                if s.executions.cheap() {
                    s.executions.status(&id).await?.map(|_| id)
                } else {
                    Some(id)
                }
            }
            None => None,
        };
        out.push(DatasetRow {
            execution,
            can_roll_back: d.current_version.is_some_and(|v| v > 1),
            owner: d.spec.metadata.owner.clone(),
            group: d.spec.spec.group.clone(),
            criticality: d.spec.spec.criticality.to_string(),
            format: d.spec.spec.target.format.clone(),
            glue: d
                .spec
                .spec
                .target
                .glue
                .as_ref()
                .map(|g| format!("{}.{}", g.database, g.table)),
            status: d.status,
            reason: d.reason,
            version: d.current_version,
            rows: d.rows,
            last_verification: d.last_verification,
            updated_at: d.updated_at,
            last_run,
            name: d.name,
        });
    }
    Ok(out)
}

/// One dataset's page: what the catalog knows of it, every version and attempt, its
/// dependencies both ways and its executions in the engine.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetView {
    pub record: DatasetRecord,
    pub history: Vec<HistoryEntry>,
    pub versions: Vec<VersionRecord>,
    pub attempts: Vec<Attempt>,
    pub depends_on: Vec<String>,
    /// The datasets that name this one in `dependsOn`.
    pub dependents: Vec<String>,
    /// Its executions in the engine store (`<run>-<dataset>`), newest first.
    pub executions: Vec<String>,
    pub can_roll_back: bool,
    /// Where and how the dataset is published.
    pub target: TargetView,
}

/// A dataset's target as readers meet it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetView {
    /// `spec.target.uri`.
    pub uri: String,
    /// `spec.target.format`: `parquet` or `delta`.
    pub format: String,
    /// A Delta target's table version readers see (its newest commit); `None` for Parquet,
    /// before the first commit, or when the log cannot be read.
    pub table_version: Option<u64>,
    /// `spec.target.glue` as `database.table`.
    pub glue: Option<String>,
    /// `spec.target.partitionBy`.
    pub partition_by: Vec<String>,
}

impl TargetView {
    async fn of(record: &DatasetRecord) -> TargetView {
        let t = &record.spec.spec.target;
        let table_version = if t.is_delta() {
            let file =
                skein_core::load::from_catalog(record.spec.clone(), record.spec_hash.clone());
            let read = async {
                skein_data::Target::open(&skein_data::Settings::default(), &file)?
                    .table_version()
                    .await
            };
            read.await.unwrap_or_else(|e| {
                tracing::warn!(dataset = %record.name, "the Delta log is not readable: {e}");
                None
            })
        } else {
            None
        };
        TargetView {
            uri: t.uri.clone(),
            format: t.format.clone(),
            table_version,
            glue: t
                .glue
                .as_ref()
                .map(|g| format!("{}.{}", g.database, g.table)),
            partition_by: t.partition_by.clone(),
        }
    }
}

/// The page of `name`.
pub async fn dataset(s: &Sources, name: &str) -> Result<DatasetView> {
    let record = s
        .catalog
        .dataset(name)
        .await?
        .ok_or_else(|| Error::UnknownDataset {
            dataset: name.to_string(),
        })?;
    let history = s.catalog.history(name).await?;
    let mut executions = Vec::new();
    for run in history.iter().rev().filter_map(|h| h.run_id.as_deref()) {
        let id = execution_name(run, name);
        if !executions.contains(&id)
            && (!s.executions.cheap() || s.executions.status(&id).await?.is_some())
        {
            executions.push(id);
        }
    }
    let dependents = s
        .catalog
        .datasets()
        .await?
        .into_iter()
        .filter(|d| d.spec.spec.depends_on.iter().any(|n| n == name))
        .map(|d| d.name)
        .collect();
    Ok(DatasetView {
        target: TargetView::of(&record).await,
        versions: s.catalog.versions(name).await?,
        attempts: s.catalog.attempts(name).await?,
        depends_on: record.spec.spec.depends_on.clone(),
        dependents,
        executions,
        can_roll_back: record.current_version.is_some_and(|v| v > 1),
        history,
        record,
    })
}

/// A run in the list of runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    #[serde(flatten)]
    pub run: RunRecord,
    /// The run execution's status (`RUNNING`, `SUCCEEDED`, …), when the engine ran it.
    pub execution_status: Option<ExecutionStatus>,
}

/// Runs, newest first.
pub async fn runs(s: &Sources) -> Result<Vec<RunRow>> {
    let mut out = Vec::new();
    for run in s.catalog.runs().await? {
        let execution_status = s.executions.status(&run.run_id).await?;
        out.push(RunRow {
            run,
            execution_status,
        });
    }
    Ok(out)
}

/// Where a dataset of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    /// Verified, waiting for an operator.
    Waiting,
    Succeeded,
    Failed,
}

impl RunState {
    fn finished(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed)
    }
}

/// One dataset of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDataset {
    pub dataset: String,
    pub group: String,
    /// `canary`, `wave 1`, …
    pub wave: String,
    pub criticality: Option<String>,
    pub state: RunState,
    /// Catalog status now.
    pub status: Option<Status>,
    pub reason: Option<String>,
    /// Version published by this run.
    pub version: Option<u64>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    /// Error of the run's last failed attempt.
    pub error: Option<String>,
    pub last_verification: Option<String>,
    /// The child execution, when the engine started one.
    pub execution: Option<String>,
}

/// Progress of a part of a run (a wave, a group).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub name: String,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub running: u64,
    pub waiting: u64,
    pub percent: f64,
}

impl Progress {
    fn add(&mut self, state: RunState) {
        self.total += 1;
        match state {
            RunState::Succeeded => self.succeeded += 1,
            RunState::Failed => self.failed += 1,
            RunState::Running => self.running += 1,
            RunState::Waiting => self.waiting += 1,
            RunState::Queued => {}
        }
        self.percent = percent(self.succeeded + self.failed, self.total);
    }
}

fn percent(done: u64, total: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        (done as f64 * 1000.0 / total as f64).round() / 10.0
    }
}

/// One point of the throughput timeline: after `seconds`, `datasets` had finished with
/// `rows` rows published.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub seconds: f64,
    pub datasets: u64,
    pub rows: u64,
}

/// How fast a run goes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    pub elapsed_seconds: f64,
    /// Seconds in which every dataset still open only waited for a person (approval);
    /// the rates leave them out.
    pub waiting_seconds: f64,
    pub rows: u64,
    pub bytes: u64,
    pub rows_per_second: f64,
    pub bytes_per_second: f64,
    pub datasets_per_minute: f64,
    pub timeline: Vec<Point>,
}

/// A run: summary, progress, datasets, throughput.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub run: RunRecord,
    /// The run execution's status, error and cause, when the engine ran it.
    pub execution_status: Option<ExecutionStatus>,
    pub execution_error: Option<String>,
    pub execution_cause: Option<String>,
    pub total: u64,
    pub finished: u64,
    pub percent: f64,
    pub waves: Vec<Progress>,
    pub groups: Vec<Progress>,
    pub datasets: Vec<RunDataset>,
    pub throughput: Throughput,
}

fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(to).ok()?;
    Some((b - a).num_milliseconds() as f64 / 1000.0)
}

/// When a dataset worked in a run (from its first attempt to its end, or now), and the
/// intervals in which it waited for approval (RFC 3339 times).
struct Span {
    work: (String, String),
    waits: Vec<(String, String)>,
}

/// Seconds of the run in which at least one dataset waited for a person and none worked:
/// a sweep over the datasets' intervals (a waiting dataset does not count as working).
fn waiting_seconds(origin: &str, spans: &[Span]) -> f64 {
    let at = |t: &str| seconds_between(origin, t).unwrap_or(0.0);
    // (time, change in working, change in waiting)
    let mut events: Vec<(f64, i64, i64)> = Vec::new();
    for s in spans {
        events.push((at(&s.work.0), 1, 0));
        events.push((at(&s.work.1), -1, 0));
        for (from, to) in &s.waits {
            events.push((at(from), -1, 1));
            events.push((at(to), 1, -1));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut working, mut waiting, mut total) = (0i64, 0i64, 0.0);
    let mut last = None;
    for (t, dw, dq) in events {
        if let Some(prev) = last
            && waiting > 0
            && working <= 0
        {
            total += t - prev;
        }
        working += dw;
        waiting += dq;
        last = Some(t);
    }
    total
}

/// (dataset, group, wave) of a run: from its plan, else every dataset with an attempt in it.
async fn members(s: &Sources, run_id: &str) -> Result<Vec<(String, String, String)>> {
    let plan = s
        .executions
        .events(run_id)
        .await?
        .into_iter()
        .find_map(|e| {
            (e.kind == "TaskStateExited"
                && e.details.get("name").and_then(Value::as_str) == Some("Plan"))
            .then(|| e.details.pointer("/output/plan").cloned())
            .flatten()
        });
    let mut out = Vec::new();
    // The plan names the item lists it wrote (the state carries no dataset list): read
    // them from the local stand-in for S3, the catalog directory.
    if let Some(plan) = &plan
        && let Some(dir) = &s.dir
        && let (Some(bucket), Some(prefix)) = (
            plan.get("bucket").and_then(Value::as_str),
            plan.get("prefix").and_then(Value::as_str),
        )
    {
        let waves = plan.get("waves").and_then(Value::as_u64).unwrap_or(0);
        let lists = std::iter::once(("canary.jsonl".to_string(), "canary".to_string()))
            .chain((0..waves).map(|n| (format!("wave-{n}.jsonl"), format!("wave {}", n + 1))));
        for (key, wave) in lists {
            let path = dir.join(bucket).join(format!("{prefix}{key}"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                if let Ok(i) = serde_json::from_str::<Value>(line) {
                    let field =
                        |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    out.push((field("dataset"), field("group"), wave.clone()));
                }
            }
        }
        return Ok(out);
    }
    if let Some(plan) = plan.filter(|p| !p.get("bucket").is_some_and(Value::is_string)) {
        let mut add = |items: Option<&Value>, wave: String| {
            for i in items.and_then(Value::as_array).into_iter().flatten() {
                let field = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                out.push((field("dataset"), field("group"), wave.clone()));
            }
        };
        add(plan.get("canary"), "canary".into());
        for (n, w) in plan
            .get("waves")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            add(Some(w), format!("wave {}", n + 1));
        }
        return Ok(out);
    }
    for d in s.catalog.datasets().await? {
        if s.catalog
            .attempts(&d.name)
            .await?
            .iter()
            .any(|a| a.run_id == run_id)
        {
            out.push((d.name.clone(), d.spec.spec.group.clone(), "-".into()));
        }
    }
    Ok(out)
}

/// Everything about one run.
pub async fn run(s: &Sources, run_id: &str) -> Result<RunView> {
    let run = s
        .catalog
        .run(run_id)
        .await?
        .ok_or_else(|| Error::UnknownRun {
            run: run_id.to_string(),
            place: s.place.clone(),
        })?;
    let execution = s.executions.execution(run_id).await?;
    let records: HashMap<String, DatasetRecord> = s
        .catalog
        .datasets()
        .await?
        .into_iter()
        .map(|d| (d.name.clone(), d))
        .collect();
    let now = skein_core::time::now();
    let mut datasets = Vec::new();
    // Per dataset: when it worked in this run, and when it waited for a person in it.
    let mut spans: Vec<Span> = Vec::new();
    for (name, group, wave) in members(s, run_id).await? {
        let record = records.get(&name);
        let child = execution_name(run_id, &name);
        // Where the engine's status is costly to ask per dataset (Step Functions), the
        // catalog's attempts tell, and the page links the execution by its name.
        let child_status = if s.executions.cheap() {
            s.executions.status(&child).await?
        } else {
            None
        };
        let attempts: Vec<_> = s
            .catalog
            .attempts(&name)
            .await?
            .into_iter()
            .filter(|a| a.run_id == run_id)
            .collect();
        let last = attempts.last();
        let published = s
            .catalog
            .versions(&name)
            .await?
            .into_iter()
            .rev()
            .find(|v| v.action == VersionAction::Published && v.manifest.run_id == run_id);
        let status = record.map(|r| r.status);
        let state = match child_status {
            Some(ExecutionStatus::Succeeded) => RunState::Succeeded,
            Some(ExecutionStatus::Running) if status == Some(Status::AwaitingApproval) => {
                RunState::Waiting
            }
            Some(ExecutionStatus::Running) => RunState::Running,
            Some(_) => RunState::Failed,
            // Not run by the engine (`skein migrate`): the attempt tells.
            None => match last.and_then(|a| a.outcome.as_deref()) {
                Some("completed" | "verified" | "up_to_date" | "up to date") => RunState::Succeeded,
                Some("awaiting_approval" | "awaiting approval") => RunState::Waiting,
                Some(_) => RunState::Failed,
                None if last.is_some() => RunState::Running,
                None => RunState::Queued,
            },
        };
        let started_at = attempts.first().map(|a| a.started_at.clone());
        let finished_at = last
            .and_then(|a| a.finished_at.clone())
            .filter(|_| state.finished());
        let seconds = started_at
            .as_deref()
            .and_then(|a| seconds_between(a, finished_at.as_deref().unwrap_or(&now)));
        let reason = record.and_then(|r| r.reason.clone());
        // Only a dataset that needs approval can wait for a person: the others' history
        // is not read (the run page is redrawn live).
        let can_wait = record.is_some_and(|r| r.spec.needs_approval());
        if let Some(start) = &started_at {
            let history = if can_wait {
                s.catalog.history(&name).await?
            } else {
                Vec::new()
            };
            let mine: Vec<_> = history
                .iter()
                .filter(|h| h.run_id.as_deref() == Some(run_id))
                .collect();
            let waits = mine
                .iter()
                .enumerate()
                .filter(|(_, h)| h.to == Status::AwaitingApproval)
                .map(|(i, h)| {
                    let until = mine.get(i + 1).map_or(now.clone(), |n| n.at.clone());
                    (h.at.clone(), until)
                })
                .collect();
            spans.push(Span {
                work: (start.clone(), finished_at.clone().unwrap_or(now.clone())),
                waits,
            });
        }
        datasets.push(RunDataset {
            criticality: record.map(|r| r.spec.spec.criticality.to_string()),
            state,
            status,
            error: attempts
                .iter()
                .rev()
                .find_map(|a| a.error.clone())
                .or_else(|| {
                    (state == RunState::Failed)
                        .then(|| reason.clone())
                        .flatten()
                }),
            reason,
            version: published.as_ref().map(|v| v.manifest.version),
            rows: published.as_ref().map(|v| v.manifest.rows),
            bytes: published.as_ref().map(|v| v.manifest.bytes),
            started_at,
            finished_at,
            seconds,
            last_verification: record.and_then(|r| r.last_verification.clone()),
            execution: (child_status.is_some() || !s.executions.cheap()).then_some(child),
            dataset: name,
            group,
            wave,
        });
    }
    let mut waves: Vec<Progress> = Vec::new();
    let mut groups: BTreeMap<String, Progress> = BTreeMap::new();
    for d in &datasets {
        match waves.iter_mut().find(|w| w.name == d.wave) {
            Some(w) => w.add(d.state),
            None => {
                let mut w = Progress {
                    name: d.wave.clone(),
                    ..Progress::default()
                };
                w.add(d.state);
                waves.push(w);
            }
        }
        let g = groups.entry(d.group.clone()).or_insert_with(|| Progress {
            name: d.group.clone(),
            ..Progress::default()
        });
        g.add(d.state);
    }
    let total = datasets.len() as u64;
    let finished = datasets.iter().filter(|d| d.state.finished()).count() as u64;
    let end = run
        .finished_at
        .clone()
        .filter(|_| {
            execution
                .as_ref()
                .is_none_or(|e| e.status != ExecutionStatus::Running)
        })
        .unwrap_or(now);
    let elapsed = seconds_between(&run.started_at, &end)
        .unwrap_or(0.0)
        .max(0.0);
    let mut ends: Vec<(f64, u64)> = datasets
        .iter()
        .filter(|d| d.state.finished())
        .filter_map(|d| {
            let at = d.finished_at.as_deref()?;
            Some((seconds_between(&run.started_at, at)?, d.rows.unwrap_or(0)))
        })
        .collect();
    ends.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut timeline = vec![Point {
        seconds: 0.0,
        datasets: 0,
        rows: 0,
    }];
    let (mut n, mut r) = (0, 0);
    for (at, rows) in ends {
        n += 1;
        r += rows;
        timeline.push(Point {
            seconds: at.max(0.0),
            datasets: n,
            rows: r,
        });
    }
    let rows: u64 = datasets.iter().filter_map(|d| d.rows).sum();
    let bytes: u64 = datasets.iter().filter_map(|d| d.bytes).sum();
    // Rates over the time the run worked: time in which datasets only waited for a
    // person is not the migration's speed.
    let waiting = waiting_seconds(&run.started_at, &spans);
    let active = (elapsed - waiting).max(0.0);
    let per = |x: f64| if active > 0.0 { x / active } else { 0.0 };
    Ok(RunView {
        execution_status: execution.as_ref().map(|e| e.status),
        execution_error: execution.as_ref().and_then(|e| e.error.clone()),
        execution_cause: execution.as_ref().and_then(|e| e.cause.clone()),
        total,
        finished,
        percent: percent(finished, total),
        waves,
        groups: groups.into_values().collect(),
        throughput: Throughput {
            elapsed_seconds: elapsed,
            waiting_seconds: waiting,
            rows,
            bytes,
            rows_per_second: per(rows as f64),
            bytes_per_second: per(bytes as f64),
            datasets_per_minute: per(finished as f64 * 60.0),
            timeline,
        },
        datasets,
        run,
    })
}

/// One event of an execution's history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    pub id: u64,
    /// `0` for the top level, `0/2:1` for a Map iteration, …
    pub frame: String,
    pub kind: String,
    /// The state the frame was in.
    pub state: Option<String>,
    pub at: String,
    pub details: Value,
}

/// An execution: its graph and its history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub id: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    /// The run execution that started this one, if any.
    pub parent: Option<String>,
    /// The dataset it migrates, for a dataset execution.
    pub dataset: Option<String>,
    pub graph: Graph,
    /// Events in the history.
    pub total_events: usize,
    /// The last `limit` events, oldest first.
    pub events: Vec<EventRow>,
}

/// An execution with its last `limit` events.
pub async fn execution(s: &Sources, id: &str, limit: usize) -> Result<ExecutionView> {
    let e = s
        .executions
        .execution(id)
        .await?
        .ok_or_else(|| Error::UnknownExecution { id: id.to_string() })?;
    let events = s.executions.events(&e.id).await?;
    let status = graph::statuses(&events, e.status);
    let graph = graph::layout(&e.definition, &status, e.status);
    let mut current: HashMap<String, String> = HashMap::new();
    let mut rows: Vec<EventRow> = Vec::with_capacity(events.len());
    for ev in &events {
        if ev.kind.ends_with("StateEntered")
            && let Some(n) = ev.details.get("name").and_then(Value::as_str)
        {
            current.insert(ev.frame.clone(), n.to_string());
        }
        rows.push(EventRow {
            id: ev.id,
            frame: ev.frame.clone(),
            kind: ev.kind.clone(),
            state: ev
                .details
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| current.get(&ev.frame).cloned()),
            at: ev.at.clone(),
            details: ev.details.clone(),
        });
    }
    let total_events = rows.len();
    let rows = rows.split_off(total_events.saturating_sub(limit));
    let parent = e
        .input
        .get("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID")
        .and_then(Value::as_str)
        .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_string());
    Ok(ExecutionView {
        dataset: parent
            .as_ref()
            .and_then(|_| e.input.get("dataset").and_then(Value::as_str))
            .map(str::to_string),
        parent,
        id: e.id,
        name: e.name,
        status: e.status,
        error: e.error,
        cause: e.cause,
        started_at: e.started_at,
        stopped_at: e.stopped_at,
        graph,
        total_events,
        events: rows,
    })
}
