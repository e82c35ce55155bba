//! Reading a machine (or a Parallel branch, a Map's item processor): its states, each by
//! type, and its graph (targets exist, states are reachable, something ends it).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::fields::{COMMON, allowed};
use super::reader::Reader;
use super::retry::{read_catch, read_retry};
use super::rules::parse_choice_rule;
use super::text::escape;
use super::{Definition, DefinitionErrors, Kind, MapState, QueryLanguage, State};
use crate::limits;

impl Definition {
    /// Reads and checks a whole state machine; every problem is reported.
    pub fn parse(doc: &Value) -> Result<Definition, DefinitionErrors> {
        let mut r = Reader { errors: Vec::new() };
        let def = read_machine(&mut r, doc, "", QueryLanguage::JsonPath);
        match def {
            Some(def) if r.errors.is_empty() => Ok(def),
            _ => {
                if r.errors.is_empty() {
                    r.err("", "the definition is not a state machine object");
                }
                Err(DefinitionErrors(r.errors))
            }
        }
    }
}

fn read_machine(
    r: &mut Reader,
    doc: &Value,
    ptr: &str,
    inherited: QueryLanguage,
) -> Option<Definition> {
    let Some(obj) = doc.as_object() else {
        r.err(
            ptr,
            "a state machine must be a JSON object with `StartAt` and `States`",
        );
        return None;
    };
    let query_language = r.query_language(obj, ptr, inherited);
    for key in obj.keys() {
        if ![
            "StartAt",
            "States",
            "Comment",
            "TimeoutSeconds",
            "Version",
            "QueryLanguage",
            "ProcessorConfig",
        ]
        .contains(&key.as_str())
        {
            r.err(
                &format!("{ptr}/{}", escape(key)),
                format!("unknown field `{key}` of a state machine"),
            );
        }
    }
    let start_at = r.string(obj, ptr, "StartAt");
    if start_at.is_none() && !obj.contains_key("StartAt") {
        r.err(ptr, "missing `StartAt`: name the first state");
    }
    let timeout_seconds = r.bounded(obj, ptr, "TimeoutSeconds", 1, limits::MAX_TASK_SECONDS);
    let mut states = BTreeMap::new();
    match obj.get("States") {
        Some(Value::Object(map)) if !map.is_empty() => {
            for (name, body) in map {
                let sptr = format!("{ptr}/States/{}", escape(name));
                if name.is_empty() || name.chars().count() > 80 {
                    r.err(&sptr, "a state name must have 1 to 80 characters");
                }
                if let Some(state) = read_state(r, name, body, &sptr, query_language) {
                    states.insert(name.clone(), state);
                }
            }
        }
        Some(_) => r.err(
            &format!("{ptr}/States"),
            "`States` must be a non-empty object of states",
        ),
        None => r.err(ptr, "missing `States`"),
    }
    let start_at = start_at.unwrap_or_default();
    if !start_at.is_empty()
        && !states.contains_key(&start_at)
        && obj.get("States").is_some_and(Value::is_object)
    {
        r.err(
            &format!("{ptr}/StartAt"),
            format!("`StartAt` names `{start_at}`, which is not a state here"),
        );
    }
    let def = Definition {
        pointer: ptr.to_string(),
        start_at,
        states,
        timeout_seconds,
        query_language,
    };
    check_graph(r, &def);
    Some(def)
}

/// Every `Next` / `Default` / catcher target exists; every state is reachable from `StartAt`;
/// some state ends the machine.
fn check_graph(r: &mut Reader, def: &Definition) {
    let mut targets: Vec<(String, String)> = Vec::new(); // (pointer, target)
    for state in def.states.values() {
        if let Some(next) = &state.next {
            targets.push((format!("{}/Next", state.pointer), next.clone()));
        }
        if let Kind::Choice { choices, default } = &state.kind {
            for (i, c) in choices.iter().enumerate() {
                targets.push((
                    format!("{}/Choices/{i}/Next", state.pointer),
                    c.next.clone(),
                ));
            }
            if let Some(d) = default {
                targets.push((format!("{}/Default", state.pointer), d.clone()));
            }
        }
        for (i, c) in state.catch.iter().enumerate() {
            targets.push((format!("{}/Catch/{i}/Next", state.pointer), c.next.clone()));
        }
    }
    for (ptr, target) in &targets {
        if !def.states.contains_key(target) {
            r.err(
                ptr,
                format!("names `{target}`, which is not a state in this machine or branch"),
            );
        }
    }
    if !def.states.contains_key(&def.start_at) {
        return;
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![def.start_at.clone()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(state) = def.states.get(&name) else {
            continue;
        };
        let mut next: Vec<String> = state.next.iter().cloned().collect();
        if let Kind::Choice { choices, default } = &state.kind {
            next.extend(choices.iter().map(|c| c.next.clone()));
            next.extend(default.iter().cloned());
        }
        next.extend(state.catch.iter().map(|c| c.next.clone()));
        todo.extend(next);
    }
    for (name, state) in &def.states {
        if !seen.contains(name) {
            r.err(&state.pointer, format!("state `{name}` is unreachable from `StartAt`; remove it or point a `Next` at it"));
        }
    }
}

fn read_state(
    r: &mut Reader,
    name: &str,
    body: &Value,
    ptr: &str,
    inherited: QueryLanguage,
) -> Option<State> {
    let Some(obj) = body.as_object() else {
        r.err(ptr, "a state must be a JSON object");
        return None;
    };
    let Some(type_name) = r.string(obj, ptr, "Type") else {
        r.err(ptr, format!("state `{name}` has no `Type`"));
        return None;
    };
    let fields = allowed(&type_name);
    if fields.is_empty() {
        r.err(
            &format!("{ptr}/Type"),
            format!("unknown state type `{type_name}`; use Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map"),
        );
        return None;
    }
    for key in obj.keys() {
        if !fields.contains(&key.as_str()) && !COMMON.contains(&key.as_str()) {
            r.err(
                &format!("{ptr}/{}", escape(key)),
                format!("field `{key}` is not allowed in a {type_name} state"),
            );
        }
    }
    let query_language = r.query_language(obj, ptr, inherited);
    if query_language == QueryLanguage::Jsonata {
        for key in [
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "ItemsPath",
        ] {
            if obj.contains_key(key) {
                r.err(&format!("{ptr}/{key}"), format!("`{key}` is a JSONPath field; JSONata states use `Arguments`, `Output` and `Assign`"));
            }
        }
    }
    if query_language == QueryLanguage::Jsonata {
        for key in [
            "Arguments",
            "Output",
            "Assign",
            "Items",
            "ItemSelector",
            "Seconds",
            "Timestamp",
            "Error",
            "Cause",
        ] {
            if let Some(v) = obj.get(key) {
                r.jsonata(&format!("{ptr}/{key}"), v);
            }
        }
        for (i, c) in obj
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in ["Output", "Assign"] {
                if let Some(v) = c.get(key) {
                    r.jsonata(&format!("{ptr}/Catch/{i}/{key}"), v);
                }
            }
        }
        for (i, c) in obj
            .get("Choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in ["Condition", "Output", "Assign"] {
                if let Some(v) = c.get(key) {
                    r.jsonata(&format!("{ptr}/Choices/{i}/{key}"), v);
                }
            }
        }
    }
    let next = r.string(obj, ptr, "Next");
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            r.err(&format!("{ptr}/End"), "`End` must be true or false");
            false
        }
    };
    let terminal = matches!(type_name.as_str(), "Choice" | "Succeed" | "Fail");
    if !terminal {
        match (&next, end) {
            (None, false) => r.err(ptr, format!("{type_name} state `{name}` needs `Next` (the following state) or `\"End\": true`")),
            (Some(_), true) => r.err(&format!("{ptr}/End"), "a state has either `Next` or `\"End\": true`, not both"),
            _ => {}
        }
    }
    for key in ["Parameters", "ResultSelector", "ItemSelector"] {
        if let Some(v) = obj.get(key) {
            r.template(&format!("{ptr}/{key}"), v);
        }
    }
    let retry = read_retry(r, obj, ptr);
    let catch = read_catch(r, obj, ptr);
    let kind = match type_name.as_str() {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => {
            let resource = r.string(obj, ptr, "Resource").unwrap_or_else(|| {
                r.err(ptr, format!("Task state `{name}` needs `Resource`"));
                String::new()
            });
            let jsonata = query_language == QueryLanguage::Jsonata;
            let timeout_expr = r.jsonata_number(obj, ptr, "TimeoutSeconds", jsonata);
            let heartbeat_expr = r.jsonata_number(obj, ptr, "HeartbeatSeconds", jsonata);
            let timeout_seconds = match timeout_expr {
                Some(_) => None,
                None => r.bounded(obj, ptr, "TimeoutSeconds", 1, limits::MAX_TASK_SECONDS),
            };
            let heartbeat_seconds = match heartbeat_expr {
                Some(_) => None,
                None => r.bounded(obj, ptr, "HeartbeatSeconds", 1, limits::MAX_TASK_SECONDS),
            };
            // "HeartbeatSeconds … must be less than the number of seconds specified in the
            // TimeoutSeconds field" (https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html)
            if let (Some(t), Some(h)) = (timeout_seconds, heartbeat_seconds)
                && h >= t
            {
                r.err(
                    &format!("{ptr}/HeartbeatSeconds"),
                    format!("`HeartbeatSeconds` ({h}) must be less than `TimeoutSeconds` ({t})"),
                );
            }
            Kind::Task {
                resource,
                timeout_seconds,
                timeout_seconds_path: timeout_expr
                    .or_else(|| r.path(obj, ptr, "TimeoutSecondsPath", true)),
                heartbeat_seconds,
                heartbeat_seconds_path: heartbeat_expr
                    .or_else(|| r.path(obj, ptr, "HeartbeatSecondsPath", true)),
            }
        }
        "Choice" => {
            let mut choices = Vec::new();
            match obj.get("Choices") {
                Some(Value::Array(items)) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = parse_choice_rule(
                            r,
                            item,
                            &format!("{ptr}/Choices/{i}"),
                            true,
                            query_language,
                        ) {
                            choices.push(c);
                        }
                    }
                }
                _ => r.err(
                    &format!("{ptr}/Choices"),
                    "a Choice state needs a non-empty `Choices` array",
                ),
            }
            Kind::Choice {
                choices,
                default: r.string(obj, ptr, "Default"),
            }
        }
        "Wait" => {
            let seconds_path = r.path(obj, ptr, "SecondsPath", true);
            let timestamp_path = r.path(obj, ptr, "TimestampPath", true);
            let given = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                .iter()
                .filter(|k| obj.contains_key(**k))
                .count();
            if given != 1 {
                r.err(ptr, "a Wait state needs exactly one of `Seconds`, `Timestamp`, `SecondsPath`, `TimestampPath`");
            }
            // Seconds: "an integer value from 0 to 99999999"; in a JSONata state it may be
            // an expression instead, whose value the engine checks the same way.
            match obj.get("Seconds") {
                Some(Value::String(s))
                    if query_language == QueryLanguage::Jsonata
                        && crate::jsonata::expression(s).is_some() => {}
                Some(_) => {
                    r.bounded(obj, ptr, "Seconds", 0, limits::MAX_WAIT_SECONDS);
                }
                None => {}
            }
            if let Some(Value::String(ts)) = obj.get("Timestamp")
                && (query_language == QueryLanguage::JsonPath
                    || crate::jsonata::expression(ts).is_none())
                && chrono::DateTime::parse_from_rfc3339(ts).is_err()
            {
                r.err(
                    &format!("{ptr}/Timestamp"),
                    format!("`{ts}` is not an RFC 3339 timestamp"),
                );
            }
            Kind::Wait {
                seconds: obj.get("Seconds").cloned(),
                timestamp: obj.get("Timestamp").cloned(),
                seconds_path,
                timestamp_path,
            }
        }
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: r.string(obj, ptr, "Error"),
            cause: r.string(obj, ptr, "Cause"),
            error_path: r.path_or_intrinsic(obj, ptr, "ErrorPath"),
            cause_path: r.path_or_intrinsic(obj, ptr, "CausePath"),
        },
        "Parallel" => {
            let mut branches = Vec::new();
            match obj.get("Branches") {
                Some(Value::Array(items)) if !items.is_empty() => {
                    for (i, b) in items.iter().enumerate() {
                        if let Some(d) =
                            read_machine(r, b, &format!("{ptr}/Branches/{i}"), query_language)
                        {
                            branches.push(d);
                        }
                    }
                }
                _ => r.err(
                    &format!("{ptr}/Branches"),
                    "a Parallel state needs a non-empty `Branches` array",
                ),
            }
            Kind::Parallel { branches }
        }
        "Map" => Kind::Map(Box::new(read_map(r, obj, ptr, query_language)?)),
        _ => return None,
    };
    Some(State {
        name: name.to_string(),
        pointer: ptr.to_string(),
        kind,
        query_language,
        input_path: r.path_field(obj, ptr, "InputPath", false),
        output_path: r.path_field(obj, ptr, "OutputPath", false),
        result_path: r.path_field(obj, ptr, "ResultPath", true),
        parameters: obj.get("Parameters").cloned(),
        result_selector: obj.get("ResultSelector").cloned(),
        arguments: obj.get("Arguments").cloned(),
        output: obj.get("Output").cloned(),
        assign: obj.get("Assign").cloned(),
        next,
        end,
        retry,
        catch,
    })
}

fn read_map(
    r: &mut Reader,
    obj: &Map<String, Value>,
    ptr: &str,
    ql: QueryLanguage,
) -> Option<MapState> {
    let (key, body) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(b), _) => ("ItemProcessor", b),
        (None, Some(b)) => ("Iterator", b),
        (None, None) => {
            r.err(
                ptr,
                "a Map state needs `ItemProcessor` (the states run for each item)",
            );
            return None;
        }
    };
    let processor = read_machine(r, body, &format!("{ptr}/{key}"), ql)?;
    let mode = body
        .get("ProcessorConfig")
        .and_then(|c| c.get("Mode"))
        .and_then(Value::as_str)
        .unwrap_or("INLINE");
    if !["INLINE", "DISTRIBUTED"].contains(&mode) {
        r.err(
            &format!("{ptr}/{key}/ProcessorConfig/Mode"),
            "`Mode` must be INLINE or DISTRIBUTED",
        );
    }
    let distributed = mode == "DISTRIBUTED";
    for key in [
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
        "ToleratedFailurePercentage",
        "ToleratedFailureCount",
    ] {
        if obj.contains_key(key) && !distributed {
            r.err(
                &format!("{ptr}/{key}"),
                format!("`{key}` needs a distributed Map (`ProcessorConfig.Mode: DISTRIBUTED`)"),
            );
        }
    }
    if let Some(reader) = obj.get("ItemReader")
        && reader.get("Resource").and_then(Value::as_str).is_none()
    {
        r.err(
            &format!("{ptr}/ItemReader/Resource"),
            "an `ItemReader` needs a `Resource`",
        );
    }
    let jsonata = ql == QueryLanguage::Jsonata;
    let concurrency_expr = r.jsonata_number(obj, ptr, "MaxConcurrency", jsonata);
    let count_expr = r.jsonata_number(obj, ptr, "ToleratedFailureCount", jsonata);
    let pct_expr = r.jsonata_number(obj, ptr, "ToleratedFailurePercentage", jsonata);
    let pct = match pct_expr {
        Some(_) => None,
        None => r.number(obj, ptr, "ToleratedFailurePercentage"),
    };
    // "You must specify a value between zero and 100"
    // (https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html)
    if pct.is_some_and(|p| !(0.0..=limits::MAX_TOLERATED_PERCENTAGE).contains(&p)) {
        r.err(
            &format!("{ptr}/ToleratedFailurePercentage"),
            "`ToleratedFailurePercentage` must be a number from 0 to 100",
        );
    }
    Some(MapState {
        processor: Box::new(processor),
        distributed,
        items_path: r.path(obj, ptr, "ItemsPath", true),
        items: obj.get("Items").cloned(),
        item_selector: obj
            .get("ItemSelector")
            .or_else(|| obj.get("Parameters"))
            .cloned(),
        item_reader: obj.get("ItemReader").cloned(),
        item_batcher: obj.get("ItemBatcher").cloned(),
        result_writer: obj.get("ResultWriter").cloned(),
        // A distributed Map runs "up to 10,000 parallel child workflow executions"
        // (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html)
        max_concurrency: if concurrency_expr.is_some() {
            None
        } else if distributed {
            r.bounded(
                obj,
                ptr,
                "MaxConcurrency",
                0,
                limits::MAX_DISTRIBUTED_CONCURRENCY,
            )
        } else {
            r.uint(obj, ptr, "MaxConcurrency")
        },
        max_concurrency_path: concurrency_expr
            .or_else(|| r.path(obj, ptr, "MaxConcurrencyPath", true)),
        tolerated_failure_percentage: pct,
        tolerated_failure_percentage_path: pct_expr
            .or_else(|| r.path(obj, ptr, "ToleratedFailurePercentagePath", true)),
        tolerated_failure_count: match count_expr {
            Some(_) => None,
            None => r.uint(obj, ptr, "ToleratedFailureCount"),
        },
        tolerated_failure_count_path: count_expr
            .or_else(|| r.path(obj, ptr, "ToleratedFailureCountPath", true)),
    })
}
