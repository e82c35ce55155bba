//! Distributed Map inputs and outputs on a local stand-in for S3: `ItemReader` (a JSON or
//! CSV object, or a listing), `ItemBatcher`, `ResultWriter`.
//!
//! `s3://bucket/key` is the file `<s3_root>/bucket/key`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::failure::Failure;
use crate::store::Execution;
use crate::template::{self, Scope};

fn field(p: &Value, name: &str, what: &str) -> Result<String, Failure> {
    p.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Failure::runtime(format!("{what} needs `{name}` in its `Parameters`")))
}

fn local(root: &Path, bucket: &str, key: &str) -> PathBuf {
    root.join(bucket).join(key.trim_start_matches('/'))
}

/// Reads the items an `ItemReader` names: `p` is its request (`Parameters` rendered, or
/// JSONata `Arguments` evaluated), `config` its `ReaderConfig`.
pub fn read(
    reader: &Value,
    p: &Value,
    config: &Value,
    scope: &Scope<'_>,
    root: &Path,
) -> Result<Value, Failure> {
    let resource = reader
        .get("Resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let max_items = match (config.get("MaxItems"), config.get("MaxItemsPath")) {
        (Some(v), _) => v.as_u64().map(|n| n as usize),
        (None, Some(Value::String(path))) => Some(count_at(scope, path, "MaxItemsPath")?),
        _ => None,
    };
    let bucket = field(p, "Bucket", "ItemReader")?;
    let mut items = match resource {
        "arn:aws:states:::s3:listObjectsV2" => {
            let prefix = p.get("Prefix").and_then(Value::as_str).unwrap_or("");
            list(root, &bucket, prefix)?
        }
        "arn:aws:states:::s3:getObject" => {
            let key = field(p, "Key", "ItemReader")?;
            let path = local(root, &bucket, &key);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Failure::new(
                    "States.ItemReaderFailed",
                    format!("cannot read s3://{bucket}/{key} ({}): {e}", path.display()),
                )
            })?;
            let input_type = config
                .get("InputType")
                .and_then(Value::as_str)
                .unwrap_or("JSON");
            match input_type {
                "JSON" => {
                    let v: Value = serde_json::from_str(&text).map_err(|e| {
                        Failure::new(
                            "States.ItemReaderFailed",
                            format!("s3://{bucket}/{key} is not JSON: {e}"),
                        )
                    })?;
                    match v {
                        Value::Array(a) => a,
                        _ => {
                            return Err(Failure::new(
                                "States.ItemReaderFailed",
                                format!("s3://{bucket}/{key} must hold a JSON array"),
                            ));
                        }
                    }
                }
                "JSONL" => text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .enumerate()
                    .map(|(i, l)| {
                        serde_json::from_str(l).map_err(|e| {
                            Failure::new(
                                "States.ItemReaderFailed",
                                format!("s3://{bucket}/{key} line {}: {e}", i + 1),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                "CSV" => csv_items(&text, config)?,
                other => {
                    return Err(Failure::runtime(format!(
                        "ItemReader `InputType` `{other}` is not one of JSON, JSONL, CSV"
                    )));
                }
            }
        }
        other => {
            return Err(Failure::runtime(format!(
                "ItemReader resource `{other}` is not supported locally; use s3:getObject or s3:listObjectsV2"
            )));
        }
    };
    // MaxItems 0 means no limit, as on AWS.
    if let Some(max) = max_items.filter(|m| *m > 0) {
        items.truncate(max);
    }
    Ok(Value::Array(items))
}

fn list(root: &Path, bucket: &str, prefix: &str) -> Result<Vec<Value>, Failure> {
    let base = root.join(bucket);
    let mut out = Vec::new();
    let mut todo = vec![base.clone()];
    while let Some(dir) = todo.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Failure::new(
                "States.ItemReaderFailed",
                format!("cannot list {}: {e}", dir.display()),
            )
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let key = path
                .strip_prefix(&base)
                .map(|k| k.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if key.starts_with(prefix) {
                let meta = entry.metadata().ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok()).map(|t| {
                    chrono::DateTime::<chrono::Utc>::from(t)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                });
                out.push(json!({
                    "Key": key,
                    "Size": meta.map(|m| m.len()).unwrap_or(0),
                    "LastModified": modified,
                    "StorageClass": "STANDARD",
                }));
            }
        }
    }
    out.sort_by(|a, b| a["Key"].as_str().cmp(&b["Key"].as_str()));
    Ok(out)
}

/// CSV rows as objects keyed by the header (first row, or `CSVHeaders`); values are strings.
fn csv_items(text: &str, config: &Value) -> Result<Vec<Value>, Failure> {
    let delimiter = match config.get("CSVDelimiter").and_then(Value::as_str) {
        Some("SEMICOLON") => ';',
        Some("TAB") => '\t',
        Some("PIPE") => '|',
        Some("SPACE") => ' ',
        _ => ',',
    };
    let mut rows = parse_csv(text, delimiter);
    let given = config.get("CSVHeaderLocation").and_then(Value::as_str) == Some("GIVEN");
    let headers: Vec<String> = if given {
        config
            .get("CSVHeaders")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| {
                Failure::runtime("ReaderConfig `CSVHeaderLocation: GIVEN` needs `CSVHeaders`")
            })?
    } else if rows.is_empty() {
        return Ok(Vec::new());
    } else {
        rows.remove(0)
    };
    // Uneven rows are tolerated as AWS does: fields beyond the header are dropped, missing
    // ones are "" (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html).
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut fields = row.into_iter();
            Value::Object(
                headers
                    .iter()
                    .map(|h| (h.clone(), Value::String(fields.next().unwrap_or_default())))
                    .collect::<Map<_, _>>(),
            )
        })
        .collect())
}

/// RFC 4180 CSV: quoted fields may hold delimiters, doubled quotes and newlines.
fn parse_csv(text: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' {
            quoted = true;
        } else if c == delimiter {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
            any = false;
        } else {
            field.push(c);
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A non-negative integer read from `path` (a `…Path` field), or `States.Runtime`.
fn count_at(scope: &Scope<'_>, path: &str, field: &str) -> Result<usize, Failure> {
    let v = template::select(scope, path)?;
    v.as_u64().map(|n| n as usize).ok_or_else(|| {
        Failure::runtime(format!(
            "`{field}` `{path}` must give a non-negative integer, got {v}"
        ))
    })
}

/// Groups items into batches: `{"Items": [...], "BatchInput": …}`.
pub fn batch(batcher: &Value, items: Vec<Value>, scope: &Scope<'_>) -> Result<Vec<Value>, Failure> {
    let max_items = match (
        batcher.get("MaxItemsPerBatch"),
        batcher.get("MaxItemsPerBatchPath"),
    ) {
        (Some(v), _) => v.as_u64().unwrap_or(0) as usize,
        (None, Some(Value::String(path))) => count_at(scope, path, "MaxItemsPerBatchPath")?,
        _ => 0,
    };
    let max_bytes = batcher
        .get("MaxInputBytesPerBatch")
        .and_then(Value::as_u64)
        .unwrap_or(256 * 1024) as usize;
    let batch_input = match batcher.get("BatchInput") {
        Some(b) => Some(template::render(b, scope)?),
        None => None,
    };
    let mut out = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        let size = item.to_string().len();
        let full = (max_items > 0 && current.len() >= max_items)
            || (!current.is_empty() && bytes + size > max_bytes);
        if full {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out
        .into_iter()
        .map(|items| {
            let mut b = json!({"Items": items});
            if let Some(input) = &batch_input {
                b["BatchInput"] = input.clone();
            }
            b
        })
        .collect())
}

/// Writes a Map's results where `ResultWriter` says (manifest plus SUCCEEDED/FAILED files)
/// and returns what the Map state outputs instead of the results.
///
/// `p` is the writer's request: its `Parameters` rendered, or its JSONata `Arguments`
/// evaluated (the same rendering as an `ItemReader`'s).
pub fn write_results(
    p: &Value,
    root: &Path,
    exec: &Execution,
    state: &str,
    outputs: &[Value],
) -> Result<Value, Failure> {
    let bucket = field(p, "Bucket", "ResultWriter")?;
    let prefix = p
        .get("Prefix")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_end_matches('/');
    let run = format!("{}-{}", exec.id, state.replace(['/', ' '], "_"));
    let key_base = if prefix.is_empty() {
        run.clone()
    } else {
        format!("{prefix}/{run}")
    };
    let dir = local(root, &bucket, &key_base);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(
            "States.ResultWriterFailed",
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let (failed, succeeded): (Vec<&Value>, Vec<&Value>) = outputs.iter().partition(|o| {
        o.get("Error").is_some()
            && o.get("Cause").is_some()
            && o.as_object().is_some_and(|m| m.len() == 2)
    });
    let entries = |items: &[&Value], status: &str| -> Value {
        Value::Array(
            items
                .iter()
                .map(|o| json!({"ExecutionArn": exec.arn, "Status": status, "Output": o.to_string()}))
                .collect(),
        )
    };
    let mut files = Vec::new();
    for (name, items, status) in [
        ("SUCCEEDED_0.json", &succeeded, "SUCCEEDED"),
        ("FAILED_0.json", &failed, "FAILED"),
    ] {
        if items.is_empty() {
            continue;
        }
        let path = dir.join(name);
        std::fs::write(&path, entries(items, status).to_string()).map_err(|e| {
            Failure::new(
                "States.ResultWriterFailed",
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        files.push(json!({"Key": format!("{key_base}/{name}"), "Size": items.len()}));
    }
    let manifest_key = format!("{key_base}/manifest.json");
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn(exec, state),
        "ResultFiles": {"SUCCEEDED": files.iter().filter(|f| f["Key"].as_str().is_some_and(|k| k.ends_with("SUCCEEDED_0.json"))).collect::<Vec<_>>(),
                        "FAILED": files.iter().filter(|f| f["Key"].as_str().is_some_and(|k| k.ends_with("FAILED_0.json"))).collect::<Vec<_>>()},
    });
    let path = dir.join("manifest.json");
    std::fs::write(&path, manifest.to_string()).map_err(|e| {
        Failure::new(
            "States.ResultWriterFailed",
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    Ok(json!({
        "MapRunArn": manifest["MapRunArn"],
        "ResultWriterDetails": {"Bucket": bucket, "Key": manifest_key},
    }))
}

/// A Map Run's ARN as AWS shapes it, `arn:…:mapRun:<state machine>/<label>:<map run id>`
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html>,
/// `Label`); locally the label is the state's name and the id the execution's.
pub fn map_run_arn(exec: &Execution, state: &str) -> String {
    let prefix = exec
        .arn
        .split(":execution:")
        .next()
        .unwrap_or("arn:aws:states:local:000000000000");
    let label: String = state
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}:mapRun:{}/{label}:{}", exec.name, exec.id)
}
