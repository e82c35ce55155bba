//! Map: one child frame per item (`<frame>/<step>:<index>`), `MaxConcurrency` at a time.
//! A distributed Map reads its items with `ItemReader`, batches them, tolerates failures
//! up to its thresholds and may write its results with `ResultWriter`; each of its items
//! is a child execution on AWS, with its own history (see [`super::frame::HistoryCount`]).

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};

use super::evaluator::Evaluator;
use super::frame::{Attempted, Run};
use super::interrupt::Interrupt;
use crate::causes::MapNumber;
use crate::definition::{MapState, State};
use crate::failure::Failure;
use crate::jsonata;
use crate::limits;
use crate::store::Frame;
use crate::template;

impl Run {
    /// Maps the items and finishes with their outputs.
    pub(super) async fn map(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
        ev: &dyn Evaluator,
        map: &MapState,
    ) -> Result<Attempted, Interrupt> {
        let result = self.run_map(state, map, frame, ev).await?;
        let result = ev.select_result(result)?;
        Ok(Attempted::after(state, ev.finish(Some(result))?))
    }

    /// Runs one child frame per item, at most `MaxConcurrency` at a time, and returns the
    /// items' outputs (or what the `ResultWriter` wrote).
    async fn run_map(
        self: &Arc<Self>,
        state: &State,
        map: &MapState,
        frame: &mut Frame,
        ev: &dyn Evaluator,
    ) -> Result<Value, Interrupt> {
        let scope = ev.scope();
        let items = match &map.item_reader {
            Some(reader) => {
                let (request, config) = ev.reader_request(reader)?;
                crate::items::read(reader, &request, &config, &scope, &self.options.s3_root)?
            }
            None => ev.items(map)?,
        };
        let Value::Array(items) = items else {
            let failure = Failure::runtime(format!(
                "state `{}`: the items (`ItemsPath`) must be a JSON array",
                state.name
            ));
            return Err(ev.value_failure(failure).into());
        };
        let mut inputs = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let input = match &map.item_selector {
                Some(selector) => ev.item_input(selector, index, item)?,
                None => item.clone(),
            };
            inputs.push(input);
        }
        let inputs = match &map.item_batcher {
            Some(b) => crate::items::batch(b, inputs, &scope)?,
            None => inputs,
        };
        // A value from a path must lie where the literal field must: a non-negative integer
        // (at most 10,000 for a distributed Map's concurrency), a percentage from 0 to 100
        // (https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html).
        let number = |fixed: Option<f64>,
                      path: &Option<String>,
                      field: MapNumber,
                      ok: &dyn Fn(&Value) -> Option<f64>,
                      what: &str|
         -> Result<Option<f64>, Failure> {
            match (fixed, path) {
                (Some(n), _) => Ok(Some(n)),
                // a JSONata state's `{% … %}` number (the definition keeps it here)
                (None, Some(p)) if jsonata::expression(p).is_some() => {
                    let v = ev.expression(p)?;
                    ok(&v).map(Some).ok_or_else(|| {
                        Failure::new(
                            "States.QueryEvaluationError",
                            format!(
                                "state `{}`: `{p}` must give {what}, got {}",
                                state.name,
                                crate::definition::text::shown(&v)
                            ),
                        )
                    })
                }
                (None, Some(p)) => {
                    let v = template::select(&scope, p)?;
                    // AWS's own causes first (a string holding a number counts), then
                    // skein's bound for what AWS also refuses (a distributed Map's 10,000)
                    let n = crate::causes::map_path_number(field, p, &v)?;
                    ok(&json!(n)).map(Some).ok_or_else(|| {
                        Failure::runtime(format!(
                            "state `{}`: `{p}` must give {what}, got {}",
                            state.name,
                            crate::definition::text::shown(&v)
                        ))
                    })
                }
                (None, None) => Ok(None),
            }
        };
        let max_concurrency = if map.distributed {
            limits::MAX_DISTRIBUTED_CONCURRENCY
        } else {
            u64::from(u32::MAX)
        };
        let count = |v: &Value| limits::integer_in(v, 0, u64::MAX).map(|n| n as f64);
        let concurrency = number(
            map.max_concurrency.map(|n| n as f64),
            &map.max_concurrency_path,
            MapNumber::MaxConcurrency,
            &|v| limits::integer_in(v, 0, max_concurrency).map(|n| n as f64),
            &format!("an integer from 0 to {max_concurrency}"),
        )?
        .unwrap_or(0.0) as usize;
        let concurrency = if concurrency == 0 {
            inputs.len().max(1)
        } else {
            concurrency
        };
        let tolerated_count = number(
            map.tolerated_failure_count.map(|n| n as f64),
            &map.tolerated_failure_count_path,
            MapNumber::ToleratedFailureCount,
            &count,
            "a non-negative integer",
        )?;
        let tolerated_pct = number(
            map.tolerated_failure_percentage,
            &map.tolerated_failure_percentage_path,
            MapNumber::ToleratedFailurePercentage,
            &|v| {
                v.as_f64()
                    .filter(|p| (0.0..=limits::MAX_TOLERATED_PERCENTAGE).contains(p))
            },
            "a number from 0 to 100",
        )?;
        let total = inputs.len();
        let step = frame.step;
        let parent = frame.id.clone();
        let first_child = format!("{parent}/{step}:0");
        let fresh = !self.resuming || self.store.frame(&self.exec.id, &first_child)?.is_none();
        if fresh && total == 0 {
            self.commit(vec![self.event(
                &parent,
                "MapStateStarted",
                json!({"length": 0}),
            )])
            .await?;
        }
        let processor = map.processor.as_ref();
        let distributed = map.distributed;
        let frame_vars = frame.vars.clone();
        let runs = futures::stream::iter(inputs.into_iter().enumerate().map(|(i, input)| {
            let child = format!("{parent}/{step}:{i}");
            let mut ops = Vec::new();
            if i == 0 {
                ops.push(self.event(&parent, "MapStateStarted", json!({"length": total})));
            }
            // A distributed Map's item is a child execution on AWS, with its own history.
            let details = if distributed {
                json!({"name": state.name, "index": i, "distributed": true, "frame": child})
            } else {
                json!({"name": state.name, "index": i})
            };
            ops.push(self.event(&parent, "MapIterationStarted", details));
            let vars = frame_vars.clone();
            async move {
                let r = self
                    .run_frame(processor, child, Some((input, vars, ops)))
                    .await;
                (i, r)
            }
        }))
        .buffer_unordered(concurrency);
        let mut results: Vec<Option<Result<Value, Failure>>> = vec![None; total];
        let mut failed = 0usize;
        futures::pin_mut!(runs);
        while let Some((i, r)) = runs.next().await {
            let r = match r {
                Ok(v) => Ok(v),
                Err(interrupt) => match interrupt.handled() {
                    Some(f) => Err(f.clone()),
                    None => return Err(interrupt),
                },
            };
            if let Err(f) = &r {
                failed += 1;
                if !distributed {
                    return Err(f.clone().into());
                }
                let over_count = tolerated_count.is_none_or(|c| failed as f64 > c);
                let over_pct =
                    tolerated_pct.is_none_or(|p| failed as f64 * 100.0 / total as f64 > p);
                if over_count && over_pct {
                    return Err(Failure::new(
                        "States.ExceedToleratedFailureThreshold",
                        format!(
                            "state `{}`: {failed} of {total} items failed, more than tolerated (last: {}: {})",
                            state.name, f.error, f.cause
                        ),
                    )
                    .into());
                }
            }
            results[i] = Some(r);
        }
        let outputs: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Some(Ok(v)) => v,
                Some(Err(f)) => f.as_json(),
                None => Value::Null,
            })
            .collect();
        Ok(match &map.result_writer {
            Some(writer) => crate::items::write_results(
                &ev.reader_request(writer)?.0,
                &self.options.s3_root,
                &self.exec,
                &state.name,
                &outputs,
            )?,
            None => {
                // Without a ResultWriter the Map's result is every item's output, and AWS
                // bounds it like any payload, whatever ResultPath does with it next.
                let result = Value::Array(outputs);
                if self.options.quotas {
                    crate::quotas::check_payload(
                        &state.name,
                        "Map result (every item's output; a ResultWriter keeps it in S3)",
                        &result,
                    )?;
                }
                result
            }
        })
    }
}
