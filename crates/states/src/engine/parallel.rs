//! Parallel: each branch a child frame (`<frame>/<step>:<branch>`), run together; the
//! result is the array of their outputs.

use std::sync::Arc;

use serde_json::{Value, json};

use super::evaluator::Evaluator;
use super::frame::{Attempted, Run};
use super::interrupt::Interrupt;
use crate::definition::{Definition, State};
use crate::store::Frame;

impl Run {
    /// Runs the branches over the state's arguments and finishes with their outputs.
    pub(super) async fn parallel(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
        ev: &dyn Evaluator,
        branches: &[Definition],
    ) -> Result<Attempted, Interrupt> {
        let input = match ev.arguments(None)? {
            Some(arguments) => arguments,
            None => ev.input().clone(),
        };
        let outputs = self.run_branches(state, branches, frame, &input).await?;
        let result = ev.select_result(Value::Array(outputs))?;
        Ok(Attempted::after(state, ev.finish(Some(result))?))
    }

    /// Runs a Parallel state's branches, each a child frame, and returns their outputs.
    async fn run_branches(
        self: &Arc<Self>,
        state: &State,
        branches: &[Definition],
        frame: &Frame,
        input: &Value,
    ) -> Result<Vec<Value>, Interrupt> {
        let step = frame.step;
        let futures = branches.iter().enumerate().map(|(i, branch)| {
            let child = format!("{}/{step}:{i}", frame.id);
            let ops = vec![self.event(
                &frame.id,
                "ParallelBranchStarted",
                json!({"name": state.name, "index": i}),
            )];
            self.run_frame(
                branch,
                child,
                Some((input.clone(), frame.vars.clone(), ops)),
            )
        });
        futures::future::try_join_all(futures).await
    }
}
