//! [`Jsonata`]: a JSONata state's fields (`Arguments`, `Output`, `Assign`, `Condition`,
//! `Items`, `{% … %}` values), evaluated over `$states` with [`crate::jsonata`].

use serde_json::{Value, json};

use super::{Assigned, Evaluator, assigned, query_error, seconds_until, wait_seconds};
use crate::choice::{ChoiceRule, Rule};
use crate::definition::{Catcher, Kind, MapState, State};
use crate::failure::Failure;
use crate::jsonata;
use crate::store::Frame;
use crate::template::Scope;

/// A JSONata state over one frame's input, context and variables.
pub(crate) struct Jsonata<'s> {
    state: &'s State,
    /// The state's input.
    input: Value,
    vars: Value,
    /// `$states`: `input` and `context`.
    states: Value,
}

impl<'s> Jsonata<'s> {
    /// Reads `state` over `frame`.
    pub(crate) fn new(state: &'s State, frame: &Frame, context: Value) -> Self {
        Jsonata {
            state,
            input: frame.input.clone(),
            vars: frame.vars.clone(),
            states: json!({"input": frame.input, "context": context}),
        }
    }

    /// Evaluates a template (a value with `{% … %}` strings) over `states`.
    fn render(&self, template: &Value, states: &Value) -> Result<Value, Failure> {
        jsonata::render(template, states, &self.vars)
    }

    /// `$states` with one more field, e.g. `result` or `errorOutput`.
    fn states_with(&self, key: &str, value: Value) -> Value {
        let mut states = self.states.clone();
        states[key] = value;
        states
    }
}

impl Evaluator for Jsonata<'_> {
    fn input(&self) -> &Value {
        &self.input
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            input: &self.input,
            context: &self.states["context"],
            vars: &self.vars,
        }
    }

    fn arguments(&self, token: Option<&str>) -> Result<Option<Value>, Failure> {
        let Some(arguments) = &self.state.arguments else {
            return Ok(None);
        };
        match token {
            Some(t) => {
                let mut states = self.states.clone();
                states["context"]["Task"] = json!({"Token": t});
                self.render(arguments, &states).map(Some)
            }
            None => self.render(arguments, &self.states).map(Some),
        }
    }

    fn pass_result(&self, _result: Option<&Value>) -> Result<Option<Value>, Failure> {
        Ok(None)
    }

    fn select_result(&self, result: Value) -> Result<Value, Failure> {
        Ok(result)
    }

    fn finish(&self, result: Option<Value>) -> Result<(Value, Option<Assigned>), Failure> {
        // Output and Assign of a state with a result see it as `$states.result`.
        let with_result;
        let states = match &result {
            Some(r) => {
                with_result = self.states_with("result", r.clone());
                &with_result
            }
            None => &self.states,
        };
        let output = match &self.state.output {
            Some(t) => self.render(t, states)?,
            None => result.unwrap_or_else(|| self.input.clone()),
        };
        let assign = match &self.state.assign {
            Some(t) => Some(assigned(self.state, self.render(t, states)?)?),
            None => None,
        };
        Ok((output, assign))
    }

    fn output(&self, rule: Option<&Value>) -> Result<Value, Failure> {
        match rule.or(self.state.output.as_ref()) {
            Some(t) => self.render(t, &self.states),
            None => Ok(self.input.clone()),
        }
    }

    fn pass_on_assign(&self) -> Result<Option<Assigned>, Failure> {
        match &self.state.assign {
            Some(t) => Ok(Some(self.assign(t)?)),
            None => Ok(None),
        }
    }

    fn assign(&self, template: &Value) -> Result<Assigned, Failure> {
        assigned(self.state, self.render(template, &self.states)?)
    }

    fn condition(&self, rule: &ChoiceRule) -> Result<bool, Failure> {
        let Rule::Condition(condition) = &rule.rule else {
            return Ok(false);
        };
        match self.render(condition, &self.states)? {
            Value::Bool(b) => Ok(b),
            other => Err(Failure::runtime(format!(
                "state `{}`: a `Condition` must give true or false, got {other}",
                self.state.name
            ))),
        }
    }

    fn fail_text(&self, fixed: &Option<String>, _path: &Option<String>) -> Result<String, Failure> {
        match fixed {
            Some(s) => match self.render(&Value::String(s.clone()), &self.states)? {
                Value::String(s) => Ok(s),
                other => Ok(other.to_string()),
            },
            None => Ok(String::new()),
        }
    }

    fn wait_seconds(&self) -> Result<f64, Failure> {
        let state = self.state;
        // A value of the wrong type or range is a query evaluation error on AWS, not
        // States.Runtime.
        match &state.kind {
            Kind::Wait {
                seconds: Some(v), ..
            } => {
                let secs = self.render(v, &self.states)?;
                wait_seconds(state, &secs, "`Seconds`").map_err(query_error)
            }
            Kind::Wait {
                timestamp: Some(v), ..
            } => {
                let ts = self.render(v, &self.states)?;
                seconds_until(state, &ts, "`Timestamp`").map_err(query_error)
            }
            _ => Ok(0.0),
        }
    }

    fn caught(
        &self,
        catcher: &Catcher,
        failure: &Failure,
    ) -> Result<(Value, Option<Assigned>), Failure> {
        // `$states.errorOutput`; the output defaults to the error.
        let states = self.states_with("errorOutput", failure.as_json());
        let output = match &catcher.output {
            Some(t) => self.render(t, &states)?,
            None => failure.as_json(),
        };
        let assign = match &catcher.assign {
            Some(t) => Some(assigned(self.state, self.render(t, &states)?)?),
            None => None,
        };
        Ok((output, assign))
    }

    fn items(&self, map: &MapState) -> Result<Value, Failure> {
        match &map.items {
            Some(t) => self.render(t, &self.states),
            None => Ok(self.input.clone()),
        }
    }

    fn item_input(&self, selector: &Value, index: usize, item: &Value) -> Result<Value, Failure> {
        let mut states = self.states.clone();
        states["context"]["Map"] = json!({"Item": {"Index": index, "Value": item}});
        self.render(selector, &states)
    }

    fn value_failure(&self, failure: Failure) -> Failure {
        query_error(failure)
    }

    fn expression(&self, text: &str) -> Result<Value, Failure> {
        self.render(&Value::String(text.to_string()), &self.states)
    }

    fn reader_request(&self, reader: &Value) -> Result<(Value, Value), Failure> {
        let args = match reader.get("Arguments") {
            Some(a) => self.render(a, &self.states)?,
            None => Value::Object(Default::default()),
        };
        let mut config = reader.get("ReaderConfig").cloned().unwrap_or(json!({}));
        if let Some(max) = config.get("MaxItems").cloned()
            && max.is_string()
        {
            config["MaxItems"] = self.render(&max, &self.states)?;
        }
        Ok((args, config))
    }
}
