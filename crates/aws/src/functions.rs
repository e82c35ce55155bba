//! The AWS-only parts of the functions: reading a run's specs from S3 (plan), working a
//! batch of SQS jobs (migrate), and turning a run-request object into an execution
//! (trigger). Everything else is the shared [`skein_usecases::tasks`].

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::{Value, json};
use skein_core::queue::Job;
use skein_usecases::payloads::{self, PlanPayload};
use skein_usecases::steps::StepError;
use skein_usecases::tasks::{self, names};
use skein_usecases::worker::{Handled, InFlight};
use tracing::Instrument;

use crate::callbacks::SfnCallbacks;
use crate::catalog::DynamoCatalog;
use crate::config::AwsSettings;
use crate::objects;

fn bad(cause: impl Into<String>) -> StepError {
    StepError::new(names::BAD_REQUEST, cause)
}

fn internal(e: impl std::fmt::Display) -> StepError {
    StepError::new(names::INTERNAL, e.to_string())
}

/// Plan: `{runId, specs: "s3://bucket/prefix/"}`. Copies the specs to a scratch directory,
/// makes their relative URIs absolute (`s3://`, relative to each spec's own place), plans
/// as locally, and keeps the source-system caps in the catalog for the migrate workers.
pub async fn plan(
    catalog: &DynamoCatalog,
    settings: &AwsSettings,
    p: &Value,
) -> Result<Value, StepError> {
    let PlanPayload { run_id, specs } = payloads::decode("plan", p)?;
    let (run_id, specs) = (run_id.as_str(), specs.as_str());
    let scratch = std::env::temp_dir().join(format!("skein-plan-{run_id}"));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(internal)?;
    let result = async {
        objects::copy_specs(settings, specs, &scratch)
            .await
            .map_err(|e| StepError::new(names::INVALID_SPEC, e))?;
        absolute_uris(&scratch, specs).map_err(|e| StepError::new(names::INVALID_SPEC, e))?;
        // The run's item lists go to SKEIN_RUNS_BUCKET, else to the specs' own bucket.
        let runs_bucket = match std::env::var("SKEIN_RUNS_BUCKET") {
            Ok(b) if !b.is_empty() => b,
            _ => objects::split_s3_uri(specs)
                .map(|(b, _)| b)
                .map_err(|e| StepError::new(names::INVALID_SPEC, e))?,
        };
        // Boxed: the planner's future is deep, and would be inlined into every caller's.
        let (plan, answer) =
            Box::pin(tasks::plan_task(catalog, &scratch, run_id, &runs_bucket)).await?;
        for (key, text) in tasks::run_items(&plan, run_id) {
            objects::write_text(settings, &runs_bucket, &key, text)
                .await
                .map_err(|e| StepError::new(names::STORAGE_ERROR, e))?;
        }
        catalog
            .put_system_caps(&plan.systems)
            .await
            .map_err(internal)?;
        Ok(answer)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The catalog function: the shared actions (`summarise` reads the run's counted ends,
/// one read for any run size).
pub async fn catalog(
    catalog: &DynamoCatalog,
    _settings: &AwsSettings,
    p: &Value,
) -> Result<Value, StepError> {
    tasks::catalog_action(catalog, p).await
}

/// Specs say where their data is relative to themselves (`data/orders.csv`), as they do
/// locally; read from `s3://bucket/specs/`, that is `s3://bucket/specs/data/orders.csv`.
/// Rewrites each copied spec's relative `source.uri` / `target.uri` that way, so the
/// catalog holds absolute locations; `file://` and absolute paths make no sense on AWS
/// and are refused, naming the file and field.
fn absolute_uris(dir: &std::path::Path, specs_uri: &str) -> Result<(), String> {
    let base = if specs_uri.ends_with('/') {
        specs_uri.to_string()
    } else {
        format!("{specs_uri}/")
    };
    let mut problems = Vec::new();
    for entry in walk(dir) {
        let rel = entry
            .strip_prefix(dir)
            .unwrap_or(&entry)
            .to_string_lossy()
            .to_string();
        if rel == skein_core::load::FLEET_FILE {
            continue;
        }
        let text = std::fs::read_to_string(&entry).map_err(|e| format!("{base}{rel}: {e}"))?;
        let Ok(mut doc) = skein_core::yaml::from_str::<serde_yaml_ng::Value>(&text) else {
            continue; // the planner reports the parse error with its line
        };
        let dir_of_spec = match rel.rsplit_once('/') {
            Some((d, _)) => format!("{base}{d}/"),
            None => base.clone(),
        };
        let mut changed = false;
        for side in ["source", "target"] {
            let Some(uri) = doc
                .get_mut("spec")
                .and_then(|s| s.get_mut(side))
                .and_then(|s| s.get_mut("uri"))
            else {
                continue;
            };
            let Some(text) = uri.as_str().map(str::to_string) else {
                continue;
            };
            if text.starts_with("s3://") {
                continue;
            }
            if text.starts_with("file://") || text.starts_with('/') {
                problems.push(format!(
                    "{base}{rel}: spec.{side}.uri: `{text}` is a local path; on AWS use an s3:// URI or a path relative to the spec"
                ));
                continue;
            }
            *uri = serde_yaml_ng::Value::String(format!(
                "{dir_of_spec}{}",
                text.trim_start_matches("./")
            ));
            changed = true;
        }
        if changed {
            let out = serde_yaml_ng::to_string(&doc).map_err(|e| format!("{base}{rel}: {e}"))?;
            std::fs::write(&entry, out).map_err(|e| format!("{base}{rel}: {e}"))?;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// How the migrate worker works.
#[derive(Debug, Clone)]
pub struct Worker {
    pub catalog: DynamoCatalog,
    pub callbacks: SfnCallbacks,
    pub sqs: aws_sdk_sqs::Client,
    pub data: skein_data::Settings,
    /// Seconds between heartbeats (task token and message visibility).
    pub heartbeat: Duration,
    /// How long a job waits, hidden, when its source system has no free reader slot.
    pub slot_wait: Duration,
}

impl Worker {
    /// From the function's environment: `SKEIN_TABLE`, `SKEIN_HEARTBEAT_SECS` (60).
    pub async fn from_env() -> Result<Worker, StepError> {
        let settings = AwsSettings::from_env();
        let table = crate::lambda::required_env(crate::lambda::TABLE_VAR)?;
        let secs = std::env::var("SKEIN_HEARTBEAT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        Ok(Worker::new(&settings, &table, Duration::from_secs(secs)).await)
    }

    pub async fn new(settings: &AwsSettings, table: &str, heartbeat: Duration) -> Worker {
        let config = settings.sdk_config().await;
        Worker {
            catalog: DynamoCatalog::new(aws_sdk_dynamodb::Client::new(&config), table),
            callbacks: SfnCallbacks::new(aws_sdk_sfn::Client::new(&config)),
            sqs: aws_sdk_sqs::Client::new(&config),
            data: data_settings(settings),
            heartbeat,
            slot_wait: Duration::from_secs(60),
        }
    }

    /// A batch of jobs from the event source: each message is worked on its own; the ones
    /// to try again are reported in `batchItemFailures` (the others are deleted by Lambda).
    pub async fn batch(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for m in event.records {
            let id = m.message_id.clone().unwrap_or_default();
            if !self.message(&m).await {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                response.batch_item_failures.push(f);
            }
        }
        response
    }

    /// One message; `true` when it is done with (answered, or not answerable at all and
    /// better dropped than retried), `false` to deliver it again.
    pub async fn message(&self, m: &SqsMessage) -> bool {
        let body = m.body.as_deref().unwrap_or("");
        let job = match tasks::parse_job(body) {
            Ok(j) => j,
            Err(e) => {
                // No token to answer: retrying cannot help; after maxReceiveCount the
                // message lands in the dead-letter queue, where people can see it.
                tracing::error!(error = %e.error, cause = %e.cause, "malformed job");
                return false;
            }
        };
        let span = tracing::info_span!("job", run_id = %job.run_id, dataset = %job.dataset);
        if is_dead_letter_queue(m) {
            return self.dead_letter(&job, m).instrument(span).await;
        }
        self.job(&job, m).instrument(span).await
    }

    /// A job from a group's dead-letter queue: fails its token with `Skein.DeadLettered`
    /// (the dead-letter consumer). Done with when answered or no longer waiting.
    async fn dead_letter(&self, job: &Job, m: &SqsMessage) -> bool {
        // The receive count the job had when SQS moved it: the DLQ keeps the attribute.
        let receives = m
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok());
        match skein_usecases::worker::dead_lettered(&self.catalog, &self.callbacks, job, receives)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("answering a dead letter: {e}");
                false
            }
        }
    }

    /// One job through the shared worker use case, with the AWS adapters: the catalog's
    /// reader slots, Step Functions' task tokens, the message's visibility.
    async fn job(&self, job: &Job, m: &SqsMessage) -> bool {
        let worker = skein_usecases::worker::Worker {
            catalog: &self.catalog,
            callbacks: Arc::new(self.callbacks.clone()),
            slots: &self.catalog,
            data: &self.data,
            allow_schema_change: false,
            heartbeat: self.heartbeat,
            visibility: self.heartbeat * 3,
            slot_wait: self.slot_wait,
        };
        let message = Arc::new(Delivered {
            worker: self.clone(),
            message: m.clone(),
        });
        let worked = worker
            .work(job, message, Arc::new(skein_data::Progress::default()))
            .await;
        match worked.handled {
            Handled::Done => true,
            Handled::Again { after } => {
                self.hide(m, after).await;
                false
            }
            // Waiting for a reader slot: a delayed copy of the message, and the original
            // deleted, so waiting never counts toward maxReceiveCount. If the copy cannot
            // be sent, the delivery is retried as a failed one instead (never lost).
            Handled::Wait { after } => match self.requeue(m, after).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("re-queueing a waiting job: {e}");
                    self.hide(m, after).await;
                    false
                }
            },
        }
    }

    /// Sends a copy of `m` to its queue, delivered after `d` (SQS delays at most 900 s:
    /// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>).
    async fn requeue(&self, m: &SqsMessage, d: Duration) -> Result<(), String> {
        let url = self.queue_url(m).await?;
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(m.body.clone().unwrap_or_default())
            .delay_seconds(d.as_secs().min(900) as i32)
            .send()
            .await
            .map_err(|e| crate::config::sdk_message(&e))?;
        Ok(())
    }

    /// The URL of the queue a message came from (its event source ARN names it).
    async fn queue_url(&self, m: &SqsMessage) -> Result<String, String> {
        let name = m
            .event_source_arn
            .as_deref()
            .and_then(|arn| arn.rsplit(':').next())
            .ok_or("the message names no queue")?;
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| format!("queue {name}: {}", crate::config::sdk_message(&e)))?;
        Ok(out.queue_url.unwrap_or_default())
    }

    /// Keeps a message hidden for `d` more (its queue URL from the event source ARN).
    async fn hide(&self, m: &SqsMessage, d: Duration) {
        let Some(handle) = m.receipt_handle.as_deref() else {
            return;
        };
        let url = match self.queue_url(m).await {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        if let Err(e) = self
            .sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(d.as_secs().min(43_200) as i32)
            .send()
            .await
        {
            tracing::warn!("visibility: {}", crate::config::sdk_message(&e));
        }
    }
}

/// Whether a message comes from a group's dead-letter queue (`<queue>-dlq`, as the
/// template and `SqsQueue::create_group` name them).
fn is_dead_letter_queue(m: &SqsMessage) -> bool {
    m.event_source_arn
        .as_deref()
        .is_some_and(|arn| arn.ends_with("-dlq"))
}

/// An SQS message a job came in, kept hidden while the job works.
struct Delivered {
    worker: Worker,
    message: SqsMessage,
}

#[async_trait::async_trait]
impl InFlight for Delivered {
    async fn keep_hidden(&self, d: Duration) {
        self.worker.hide(&self.message, d).await;
    }
}

/// The data plane's S3 settings: the explicit endpoint and credentials of `settings` when
/// it has them (tests), else the standard AWS environment.
pub fn data_settings(settings: &AwsSettings) -> skein_data::Settings {
    let mut data = skein_data::Settings::default();
    // On Lambda: DataFusion's pool is a share of the function's memory, and its spill
    // files go to SKEIN_SPILL_DIR, else /tmp (the function's ephemeral storage).
    if let Some(mb) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        data.memory_limit = lambda_memory_pool(mb);
        data.spill_dir = Some(
            std::env::var_os("SKEIN_SPILL_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::PathBuf::from("/tmp")),
        );
    }
    if let Some(endpoint) = &settings.endpoint {
        let region = settings
            .region_in_effect()
            .unwrap_or_else(|| "us-east-1".into());
        let (id, secret) = settings.credentials.clone().unwrap_or_default();
        data.s3 = skein_data::S3Settings::with_endpoint(endpoint, &region, &id, &secret);
    }
    data
}

/// DataFusion's memory pool on a function of `mb` MiB: half of it, leaving the rest to
/// the runtime, Parquet writers' buffers and the S3 client (the pool bounds only what
/// operators hold before they spill), and never under 128 MiB.
pub fn lambda_memory_pool(mb: usize) -> usize {
    (mb / 2).max(128) * 1024 * 1024
}

/// A run request: where the specs are, and optionally the run id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    pub specs: String,
    #[serde(default)]
    pub run_id: Option<String>,
}

/// The `detail` of an S3 `Object Created` event delivered by EventBridge.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct ObjectCreated {
    bucket: NameOnly,
    object: ObjectRef,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct NameOnly {
    name: String,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct ObjectRef {
    key: String,
    #[serde(default)]
    etag: Option<String>,
}

/// The objects an event names, typed with `aws_lambda_events`: an EventBridge `Object
/// Created` event, or an S3 notification (`Records[].s3`). Each is (bucket, key, etag).
pub fn objects_of_event(event: &Value) -> Result<Vec<(String, String, String)>, StepError> {
    use aws_lambda_events::event::eventbridge::EventBridgeEvent;
    use aws_lambda_events::event::s3::S3Event;
    if event.get("detail").is_some() {
        let e: EventBridgeEvent<ObjectCreated> = serde_json::from_value(event.clone()).map_err(|e| {
            bad(format!(
                "not an EventBridge S3 `Object Created` event ({e}); the rule must match source aws.s3, detail-type Object Created"
            ))
        })?;
        return Ok(vec![(
            e.detail.bucket.name,
            e.detail.object.key,
            e.detail.object.etag.unwrap_or_default(),
        )]);
    }
    if event.get("Records").is_some() {
        let e: S3Event = serde_json::from_value(event.clone())
            .map_err(|e| bad(format!("not an S3 notification event ({e})")))?;
        let mut out = Vec::new();
        for (i, r) in e.records.into_iter().enumerate() {
            match (r.s3.bucket.name, r.s3.object.key) {
                (Some(b), Some(k)) => out.push((
                    b,
                    // S3 notifications URL-encode keys (spaces as +).
                    r.s3.object
                        .url_decoded_key
                        .unwrap_or_else(|| decode_key(&k)),
                    r.s3.object.e_tag.unwrap_or_default(),
                )),
                _ => {
                    return Err(bad(format!(
                        "Records[{i}] of the S3 event lacks s3.bucket.name or s3.object.key"
                    )));
                }
            }
        }
        if out.is_empty() {
            return Err(bad("the S3 event has no Records"));
        }
        return Ok(out);
    }
    Err(bad(
        "not an S3 event: expected an EventBridge `Object Created` event (detail.bucket, detail.object) or an S3 notification (Records[].s3)",
    ))
}

fn decode_key(k: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = k.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A run id for a request object: the request's own, else `<file stem>-<etag prefix>`,
/// so that a repeated event for the same object starts nothing new.
fn run_id_for(key: &str, etag: &str, request: &RunRequest) -> String {
    if let Some(id) = &request.run_id {
        return id.clone();
    }
    let stem = key
        .rsplit('/')
        .next()
        .unwrap_or(key)
        .trim_end_matches(".json");
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let tag: String = etag.trim_matches('"').chars().take(8).collect();
    if tag.is_empty() {
        format!("run-{clean}")
    } else {
        format!("run-{clean}-{tag}")
    }
}

/// Trigger: reads each run-request object of the event and starts the migration-run
/// state machine with `{runId, specs}`; a request whose execution exists already (a
/// repeated event) is not started twice.
pub async fn trigger(
    settings: &AwsSettings,
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    event: &Value,
) -> Result<Value, StepError> {
    let objects = objects_of_event(event)?;
    let mut started = Vec::new();
    for (bucket, key, etag) in objects {
        let text = objects::read_text(settings, &bucket, &key)
            .await
            .map_err(bad)?;
        let request: RunRequest = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "s3://{bucket}/{key} is not a run request ({e}); expected {{\"specs\": \"s3://bucket/specs/\", \"runId\": \"optional\"}}"
            ))
        })?;
        objects::split_s3_uri(&request.specs)
            .map_err(|e| bad(format!("s3://{bucket}/{key}: specs: {e}")))?;
        let run_id = run_id_for(&key, &etag, &request);
        let input = json!({"runId": run_id, "specs": request.specs});
        let result = sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(&run_id)
            .input(input.to_string())
            .send()
            .await;
        match result {
            Ok(o) => {
                tracing::info!(run_id = %run_id, execution = %o.execution_arn, "run started");
                started.push(
                    json!({"runId": run_id, "executionArn": o.execution_arn, "started": true}),
                );
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                // AWS: the same name with the same input while running is the same run; a
                // name already used otherwise (closed, or other input) is refused for 90 days.
                // https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
                let reason = format!(
                    "an execution named `{run_id}` exists already: a repeated event for the same request starts nothing new; to start another run, give the request a new runId"
                );
                tracing::warn!(run_id = %run_id, "{reason}");
                started.push(json!({"runId": run_id, "started": false, "reason": reason}));
            }
            Err(e) => {
                return Err(internal(format!(
                    "StartExecution of {run_id}: {}",
                    crate::config::sdk_message(&e)
                )));
            }
        }
    }
    Ok(json!({ "runs": started }))
}
