//! The states that only steer: Pass, Succeed, Fail and Choice.

use super::evaluator::Evaluator;
use super::frame::{Attempted, Run, Step};
use super::interrupt::Interrupt;
use crate::choice::ChoiceRule;
use crate::definition::State;
use crate::failure::Failure;

/// A Fail state's `Error` or `Cause`: written, and its `…Path`.
type FailField<'a> = (&'a Option<String>, &'a Option<String>);

impl Run {
    /// Pass: its result (or input) placed and output.
    pub(super) fn pass(
        &self,
        state: &State,
        ev: &dyn Evaluator,
        result: Option<&serde_json::Value>,
    ) -> Result<Attempted, Interrupt> {
        Ok(Attempted::after(state, ev.finish(ev.pass_result(result)?)?))
    }

    /// Succeed: ends the frame with its output.
    pub(super) fn succeed(&self, ev: &dyn Evaluator) -> Result<Attempted, Interrupt> {
        Ok(Attempted {
            step: Step::End {
                output: ev.output(None)?,
            },
            assign: None,
        })
    }

    /// Fail: the failure it raises (or the one evaluating its fields gave).
    pub(super) fn fail(
        &self,
        ev: &dyn Evaluator,
        (error, error_path): FailField<'_>,
        (cause, cause_path): FailField<'_>,
    ) -> Failure {
        let raised = || -> Result<Failure, Failure> {
            Ok(Failure {
                error: ev.fail_text(error, error_path)?,
                cause: ev.fail_text(cause, cause_path)?,
            })
        };
        raised().unwrap_or_else(|f| f)
    }

    /// Choice: the first rule that holds, else `Default`, else `States.NoChoiceMatched`.
    pub(super) fn choice(
        &self,
        state: &State,
        ev: &dyn Evaluator,
        choices: &[ChoiceRule],
        default: Option<&String>,
    ) -> Result<Attempted, Interrupt> {
        for c in choices {
            if ev.condition(c)? {
                let output = ev.output(c.output.as_ref())?;
                let assign = match &c.assign {
                    Some(t) => Some(ev.assign(t)?),
                    None => None,
                };
                return Ok(Attempted {
                    step: Step::Next {
                        next: c.next.clone(),
                        output,
                    },
                    assign,
                });
            }
        }
        match default {
            Some(d) => Ok(Attempted {
                step: Step::Next {
                    next: d.clone(),
                    output: ev.output(None)?,
                },
                assign: ev.pass_on_assign()?,
            }),
            None => Err(Failure::new(
                "States.NoChoiceMatched",
                format!(
                    "no choice rule of state `{}` matched and it has no `Default`",
                    state.name
                ),
            )
            .into()),
        }
    }
}
