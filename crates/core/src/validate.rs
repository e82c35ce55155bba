//! Checks on specs that need no data: names, URIs, formats, options, rules, and, across a
//! set of specs, duplicate names, unknown dependencies and dependency cycles.
//!
//! Checks that need the SQL engine or the source's schema (the transform query, rule
//! columns) live in the data plane.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use crate::problem::Problem;
use crate::spec::{API_VERSION, KIND, Rule};
use crate::spec_file::SpecFile;

static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9._-]*$").unwrap());

/// Whether `name` is a legal dataset (or group) name: `[a-z0-9][a-z0-9._-]*`, at most 128.
pub fn is_valid_name(name: &str) -> bool {
    name.len() <= 128 && NAME.is_match(name)
}

/// The URI schemes skein reads and writes.
pub fn uri_problem(uri: &str) -> Option<String> {
    if uri.trim().is_empty() {
        return Some("the URI is empty".into());
    }
    if let Some((scheme, rest)) = uri.split_once("://") {
        match scheme {
            "s3" => {
                let bucket = rest.split('/').next().unwrap_or("");
                if bucket.is_empty() {
                    return Some(format!("`{uri}` names no bucket"));
                }
                None
            }
            "file" => None,
            other => Some(format!(
                "scheme `{other}://` is not supported (use s3://, file:// or a relative path)"
            )),
        }
    } else {
        None
    }
}

/// All single-file problems of a parsed spec.
pub fn check_file(file: &SpecFile) -> Vec<Problem> {
    let mut out = Vec::new();
    let s = &file.spec;
    let mut push =
        |field: &str, message: String, hint: &str| out.push(file.problem(field, message, hint));

    if s.api_version != API_VERSION {
        push(
            "apiVersion",
            format!("`{}` is not supported", s.api_version),
            "write `apiVersion: skein/v1`",
        );
    }
    if s.kind != KIND {
        push(
            "kind",
            format!("`{}` is not a dataset spec", s.kind),
            "write `kind: Dataset`",
        );
    }
    if !is_valid_name(&s.metadata.name) {
        push(
            "metadata.name",
            format!("`{}` is not a valid dataset name", s.metadata.name),
            "use lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        );
    }
    let spec = &s.spec;
    if !is_valid_name(&spec.group) {
        push(
            "spec.group",
            format!("`{}` is not a valid group name", spec.group),
            "use the same characters as dataset names",
        );
    }
    if let Some(system) = &spec.source.system
        && !is_valid_name(system)
    {
        push(
            "spec.source.system",
            format!("`{system}` is not a valid system name"),
            "use the same characters as dataset names",
        );
    }
    for (i, dep) in spec.depends_on.iter().enumerate() {
        let field = format!("spec.dependsOn[{i}]");
        if dep == &s.metadata.name {
            push(
                &field,
                "a dataset cannot depend on itself".into(),
                "remove it from dependsOn",
            );
        } else if !is_valid_name(dep) {
            push(
                &field,
                format!("`{dep}` is not a valid dataset name"),
                "name another dataset's metadata.name",
            );
        }
    }
    if let Some(p) = uri_problem(&spec.source.uri) {
        push(
            "spec.source.uri",
            p,
            "point at a file or directory of the source data",
        );
    }
    if let Some(p) = uri_problem(&spec.target.uri) {
        push(
            "spec.target.uri",
            p,
            "point at the directory the dataset is published to",
        );
    }
    if spec.source.uri.trim_end_matches('/') == spec.target.uri.trim_end_matches('/') {
        push(
            "spec.target.uri",
            "the target is the source".into(),
            "write to a different location than you read from",
        );
    }
    if spec.target.target_format().is_none() {
        push(
            "spec.target.format",
            format!("`{}` is not a target format", spec.target.format),
            "write `format: parquet` (the default: Parquet files) or `format: delta` (a Delta Lake table)",
        );
    }
    if let Some(glue) = &spec.target.glue {
        let ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 255
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        for (field, name) in [
            ("spec.target.glue.database", &glue.database),
            ("spec.target.glue.table", &glue.table),
        ] {
            if !ok(name) {
                push(
                    field,
                    format!("`{name}` is not a Glue name Athena can query"),
                    "use lower-case letters, digits and `_` only",
                );
            }
        }
        if !spec.target.uri.starts_with("s3://") {
            push(
                "spec.target.glue",
                format!("the target `{}` is not on S3", spec.target.uri),
                "register only S3 targets in Glue (an s3:// spec.target.uri), or remove `glue:`",
            );
        }
    }
    for (i, column) in spec.target.partition_by.iter().enumerate() {
        let field = format!("spec.target.partitionBy[{i}]");
        let plain = column
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && column
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            push(
                &field,
                format!("`{column}` is not a column name a path can hold"),
                "partition by a column named with letters, digits and `_` (rename it in spec.transform.sql)",
            );
        } else if spec.target.partition_by[..i].contains(column) {
            push(
                &field,
                format!("`{column}` is listed twice"),
                "name each partition column once",
            );
        }
    }
    if !spec.target.partition_by.is_empty() && spec.source.chunk_size.is_some() {
        push(
            "spec.target.partitionBy",
            "a chunked source (spec.source.chunkSize) cannot be partitioned yet".into(),
            "remove chunkSize or partitionBy",
        );
    }
    if spec.source.is_incremental() {
        if spec.source.chunk_size.is_some() {
            push(
                "spec.source.chunkSize",
                "an incremental source (mode: incremental) is not chunked yet".into(),
                "remove chunkSize: each run migrates only the new files",
            );
        }
        if let Some(t) = &spec.transform
            && t.command.is_some()
            && !t.row_wise
        {
            push(
                "spec.source.mode",
                "an incremental run sends only the new files through the transform, and this command does not declare `rowWise: true`".into(),
                "set `rowWise: true` on spec.transform if the command treats each row alone, or remove `mode: incremental`",
            );
        }
    } else if spec.source.on_change.is_some() {
        push(
            "spec.source.onChange",
            "is for an incremental source".into(),
            "set `mode: incremental`, or remove onChange",
        );
    }
    if spec.target.max_rows_per_file == Some(0) {
        push(
            "spec.target.maxRowsPerFile",
            "must be at least 1".into(),
            "leave it out for the default of 10,000,000",
        );
    }
    if spec.source.chunk_size.is_some_and(|c| c.0 < 1024 * 1024) {
        push(
            "spec.source.chunkSize",
            "must be at least 1MiB".into(),
            "chunks are for large sources: write e.g. `chunkSize: 512MiB`, or leave it out for one job",
        );
    }
    if let Some(c) = spec.source.compression
        && !matches!(
            spec.source.format,
            crate::spec::SourceFormat::Csv | crate::spec::SourceFormat::Ndjson
        )
    {
        push(
            "spec.source.compression",
            format!(
                "{c} is for CSV and NDJSON files, not a {} source",
                spec.source.format
            ),
            "remove `compression:` (Parquet and Avro files compress their own blocks)",
        );
    }
    if let Some(csv) = &spec.source.csv {
        if spec.source.format != crate::spec::SourceFormat::Csv {
            push(
                "spec.source.csv",
                format!("csv options given for a {} source", spec.source.format),
                "remove `csv:` or set `format: csv`",
            );
        }
        if csv.delimiter.len() != 1 || !csv.delimiter.is_ascii() {
            push(
                "spec.source.csv.delimiter",
                format!("`{}` is not one ASCII character", csv.delimiter),
                "use e.g. `,`, `;`, `|` or `\"\\t\"`",
            );
        }
        if csv.quote.len() != 1 || !csv.quote.is_ascii() {
            push(
                "spec.source.csv.quote",
                format!("`{}` is not one ASCII character", csv.quote),
                "use `\"` or `'`",
            );
        }
        if csv.infer_records == Some(0) {
            push(
                "spec.source.csv.inferRecords",
                "must be at least 1".into(),
                "give the number of records to read to infer column types, or leave it out for the default of 10,000",
            );
        }
    }
    if let Some(t) = &spec.transform {
        match (&t.sql, &t.command) {
            (Some(_), Some(_)) => push(
                "spec.transform",
                "has both `sql` and `command`".into(),
                "a transform is one SQL query or one command: keep one",
            ),
            (None, None) => push(
                "spec.transform",
                "has neither `sql` nor `command`".into(),
                "write one SELECT over the table `source`, give a command, or remove `transform`",
            ),
            (Some(sql), None) if sql.trim().is_empty() => push(
                "spec.transform.sql",
                "the query is empty".into(),
                "write one SELECT over the table `source`, or remove `transform`",
            ),
            (None, Some(cmd)) if cmd.first().is_none_or(|p| p.trim().is_empty()) => push(
                "spec.transform.command",
                "names no program".into(),
                "give the program and its arguments, e.g. [python3, scripts/fix_orders.py]",
            ),
            _ => {}
        }
        if t.sql.is_some()
            && (!t.env.is_empty() || !t.params.is_empty() || t.timeout.is_some() || t.row_wise)
        {
            push(
                "spec.transform",
                "env, params, timeout and rowWise are for a command".into(),
                "remove them, or use `command` instead of `sql`",
            );
        }
        if let Err(e) = t.timeout() {
            push("spec.transform.timeout", e, "write e.g. 90s, 30m or 2h");
        }
    }
    if let Some(v) = &spec.verify {
        if let Some(key) = &v.key
            && key.trim().is_empty()
        {
            push(
                "spec.verify.key",
                "the key column is empty".into(),
                "name the column that identifies a row",
            );
        }
        for (i, q) in v.sample_queries.iter().enumerate() {
            if !q.contains("{}") {
                push(
                    &format!("spec.verify.sampleQueries[{i}]"),
                    "the query does not contain `{}`".into(),
                    "write `{}` where the table goes, e.g. SELECT count(*) FROM {}",
                );
            }
        }
        for (i, rule) in v.rules.iter().enumerate() {
            let field = format!("spec.verify.rules[{i}]");
            if rule.column().trim().is_empty() {
                push(
                    &field,
                    format!("the {} rule names no column", rule.kind()),
                    "name an output column",
                );
            }
            match rule {
                Rule::Range {
                    min: None,
                    max: None,
                    ..
                } => push(
                    &field,
                    "a range rule needs `min`, `max` or both".into(),
                    "add the bounds",
                ),
                Rule::Range { min, max, .. } => {
                    for (bound, v) in [("min", min), ("max", max)] {
                        if let Some(v) = v
                            && !(v.is_number() || v.is_string())
                        {
                            push(
                                &format!("{field}.{bound}"),
                                format!("`{v}` is neither a number nor a string"),
                                "write a number or a quoted value",
                            );
                        }
                    }
                }
                Rule::Regex { pattern, .. } => {
                    if let Err(e) = Regex::new(pattern) {
                        push(
                            &format!("{field}.pattern"),
                            format!("the pattern does not compile: {e}"),
                            "fix the regular expression",
                        );
                    }
                }
                Rule::AcceptedValues { values, .. } if values.is_empty() => push(
                    &format!("{field}.values"),
                    "the list of values is empty".into(),
                    "list the values that are allowed",
                ),
                _ => {}
            }
        }
    }
    out
}

/// Problems across a set of specs: duplicate names, dependencies on unknown datasets
/// (only when the set is a whole directory), and dependency cycles.
pub fn check_set(files: &[SpecFile], whole_directory: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut by_name: BTreeMap<&str, &SpecFile> = BTreeMap::new();
    for f in files {
        if let Some(first) = by_name.insert(f.name(), f) {
            out.push(f.problem(
                "metadata.name",
                format!(
                    "dataset `{}` is also defined in {}",
                    f.name(),
                    first.path.display()
                ),
                "give each dataset a unique name",
            ));
        }
    }
    if whole_directory {
        for f in files {
            for (i, dep) in f.spec.spec.depends_on.iter().enumerate() {
                if !by_name.contains_key(dep.as_str()) {
                    out.push(f.problem(
                        &format!("spec.dependsOn[{i}]"),
                        format!("no dataset named `{dep}` in this directory"),
                        "add its spec, or remove the dependency",
                    ));
                }
            }
        }
    }
    for cycle in cycles(files) {
        let f = by_name[cycle[0].as_str()];
        out.push(f.problem(
            "spec.dependsOn",
            format!("dependency cycle: {}", cycle.join(" -> ")),
            "break the cycle: a dataset cannot (indirectly) depend on itself",
        ));
    }
    out
}

/// Each dependency cycle once, as the list of names from a node back to itself.
fn cycles(files: &[SpecFile]) -> Vec<Vec<String>> {
    let graph: BTreeMap<&str, Vec<&str>> = files
        .iter()
        .map(|f| {
            (
                f.name(),
                f.spec.spec.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut seen_sets: BTreeSet<Vec<String>> = BTreeSet::new();
    for &start in graph.keys() {
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        let mut path: Vec<&str> = Vec::new();
        if state.get(start).copied() == Some(2) {
            continue;
        }
        while let Some((node, idx)) = stack.pop() {
            if idx == 0 {
                if state.get(node).copied() == Some(2) {
                    continue;
                }
                state.insert(node, 1);
                path.push(node);
            }
            let deps = graph.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if idx < deps.len() {
                stack.push((node, idx + 1));
                let next = deps[idx];
                match state.get(next).copied() {
                    Some(1) => {
                        let pos = path.iter().position(|n| *n == next).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[pos..].iter().map(|s| s.to_string()).collect();
                        let mut key = cycle.clone();
                        key.sort();
                        cycle.push(next.to_string());
                        if seen_sets.insert(key) {
                            found.push(cycle);
                        }
                    }
                    Some(2) => {}
                    _ if graph.contains_key(next) => stack.push((next, 0)),
                    _ => {}
                }
            } else {
                state.insert(node, 2);
                path.pop();
            }
        }
    }
    found
}
