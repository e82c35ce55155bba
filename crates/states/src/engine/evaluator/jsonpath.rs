//! [`JsonPath`]: a JSONPath state's fields (`InputPath`, `Parameters`, `ResultSelector`,
//! `ResultPath`, `OutputPath`, `Assign`, Choice rules), read with [`crate::template`].

use serde_json::{Value, json};

use super::{Assigned, Evaluator, assigned, seconds_until, wait_seconds};
use crate::choice::{self, ChoiceRule};
use crate::definition::{Catcher, Kind, MapState, State};
use crate::failure::Failure;
use crate::jsonata;
use crate::store::Frame;
use crate::template::{self, Scope};

/// A JSONPath state over one frame's input, context and variables.
pub(crate) struct JsonPath<'s> {
    state: &'s State,
    /// The state's input as it came.
    raw: Value,
    /// After `InputPath`.
    effective: Value,
    context: Value,
    vars: Value,
}

impl<'s> JsonPath<'s> {
    /// Reads `state` over `frame`; `InputPath` is applied here.
    pub(crate) fn new(state: &'s State, frame: &Frame, context: Value) -> Result<Self, Failure> {
        let raw = frame.input.clone();
        let vars = frame.vars.clone();
        let effective = template::apply_path(
            &state.input_path,
            &raw,
            &Scope {
                input: &raw,
                context: &context,
                vars: &vars,
            },
        )?;
        Ok(JsonPath {
            state,
            raw,
            effective,
            context,
            vars,
        })
    }

    /// A scope over `input` with the state's context and variables.
    fn over<'a>(&'a self, input: &'a Value) -> Scope<'a> {
        Scope {
            input,
            context: &self.context,
            vars: &self.vars,
        }
    }

    /// `Assign` over `input` as `$`.
    fn assign_over(&self, template: &Value, input: &Value) -> Result<Assigned, Failure> {
        assigned(self.state, template::render(template, &self.over(input))?)
    }
}

impl Evaluator for JsonPath<'_> {
    fn input(&self) -> &Value {
        &self.effective
    }

    fn scope(&self) -> Scope<'_> {
        self.over(&self.effective)
    }

    fn arguments(&self, token: Option<&str>) -> Result<Option<Value>, Failure> {
        let Some(parameters) = &self.state.parameters else {
            return Ok(None);
        };
        let mut context = self.context.clone();
        if let Some(t) = token {
            context["Task"] = json!({"Token": t});
        }
        let scope = Scope {
            input: &self.effective,
            context: &context,
            vars: &self.vars,
        };
        template::render(parameters, &scope).map(Some)
    }

    fn pass_result(&self, result: Option<&Value>) -> Result<Option<Value>, Failure> {
        match (result, &self.state.parameters) {
            (Some(r), _) => Ok(Some(r.clone())),
            (None, Some(p)) => template::render(p, &self.scope()).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn select_result(&self, result: Value) -> Result<Value, Failure> {
        match &self.state.result_selector {
            Some(selector) => template::render(selector, &self.over(&result)),
            None => Ok(result),
        }
    }

    fn finish(&self, result: Option<Value>) -> Result<(Value, Option<Assigned>), Failure> {
        let result = result.unwrap_or_else(|| self.effective.clone());
        let assign = match &self.state.assign {
            Some(t) => Some(self.assign_over(t, &result)?),
            None => None,
        };
        let placed = template::apply_result_path(&self.state.result_path, &self.raw, result)?;
        let output = template::apply_path(&self.state.output_path, &placed, &self.over(&self.raw))?;
        Ok((output, assign))
    }

    fn output(&self, _rule: Option<&Value>) -> Result<Value, Failure> {
        template::apply_path(
            &self.state.output_path,
            &self.effective,
            &self.over(&self.raw),
        )
    }

    fn pass_on_assign(&self) -> Result<Option<Assigned>, Failure> {
        Ok(None)
    }

    fn assign(&self, template: &Value) -> Result<Assigned, Failure> {
        self.assign_over(template, &self.effective)
    }

    fn condition(&self, rule: &ChoiceRule) -> Result<bool, Failure> {
        choice::decide_scoped(&rule.rule, &self.effective, &self.context, &self.vars)
            .map_err(|e| Failure::runtime(e.0))
    }

    fn fail_text(&self, fixed: &Option<String>, path: &Option<String>) -> Result<String, Failure> {
        match (fixed, path) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(p)) => match template::eval(p, &self.over(&self.raw))? {
                Value::String(s) => Ok(s),
                other => Err(Failure::runtime(format!(
                    "`{p}` must give a string, got {other}"
                ))),
            },
            (None, None) => Ok(String::new()),
        }
    }

    fn wait_seconds(&self) -> Result<f64, Failure> {
        let state = self.state;
        let Kind::Wait {
            seconds,
            timestamp,
            seconds_path,
            timestamp_path,
        } = &state.kind
        else {
            return Err(Failure::runtime(format!(
                "state `{}` is not a Wait",
                state.name
            )));
        };
        if let Some(v) = seconds {
            wait_seconds(state, v, "`Seconds`")
        } else if let Some(v) = timestamp {
            seconds_until(state, v, "`Timestamp`")
        } else if let Some(p) = seconds_path {
            let scope = self.scope();
            let v = template::select(&scope, p)
                .map_err(|_| Failure::runtime(crate::causes::seconds_path_missing(p)))?;
            crate::causes::seconds_path_value(p, &v)?;
            wait_seconds(state, &v, &format!("`SecondsPath` `{p}`"))
        } else if let Some(p) = timestamp_path {
            let v = template::select(&self.scope(), p)?;
            seconds_until(state, &v, &format!("`TimestampPath` `{p}`"))
        } else {
            Err(Failure::runtime(format!(
                "state `{}`: Wait needs a duration",
                state.name
            )))
        }
    }

    fn caught(
        &self,
        catcher: &Catcher,
        failure: &Failure,
    ) -> Result<(Value, Option<Assigned>), Failure> {
        let output =
            template::apply_result_path(&catcher.result_path, &self.raw, failure.as_json())?;
        let assign = match &catcher.assign {
            Some(t) => Some(self.assign_over(t, &failure.as_json())?),
            None => None,
        };
        Ok((output, assign))
    }

    fn items(&self, map: &MapState) -> Result<Value, Failure> {
        match &map.items_path {
            Some(p) => template::select(&self.scope(), p),
            None => Ok(self.effective.clone()),
        }
    }

    fn item_input(&self, selector: &Value, index: usize, item: &Value) -> Result<Value, Failure> {
        let mut context = self.context.clone();
        context["Map"] = json!({"Item": {"Index": index, "Value": item}});
        let scope = Scope {
            input: &self.effective,
            context: &context,
            vars: &self.vars,
        };
        template::render(selector, &scope)
    }

    fn value_failure(&self, failure: Failure) -> Failure {
        failure
    }

    fn expression(&self, text: &str) -> Result<Value, Failure> {
        jsonata::render(&Value::String(text.to_string()), &Value::Null, &self.vars)
    }

    fn reader_request(&self, reader: &Value) -> Result<(Value, Value), Failure> {
        let params = match reader.get("Parameters") {
            Some(p) => template::render(p, &self.scope())?,
            None => Value::Object(Default::default()),
        };
        let config = reader.get("ReaderConfig").cloned().unwrap_or(json!({}));
        Ok((params, config))
    }
}
