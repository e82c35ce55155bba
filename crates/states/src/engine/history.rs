//! An execution's history as Step Functions' `GetExecutionHistory` shapes it.

use serde_json::{Value, json};

use crate::store::Event;

/// An event in the shape of Step Functions' `GetExecutionHistory`.
pub fn history_json(events: &[Event]) -> Value {
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            let key = if e.kind.ends_with("StateEntered") {
                "stateEnteredEventDetails".to_string()
            } else if e.kind.ends_with("StateExited") {
                "stateExitedEventDetails".to_string()
            } else {
                let mut k = e.kind.clone();
                if let Some(first) = k.get_mut(0..1) {
                    first.make_ascii_lowercase();
                }
                format!("{k}EventDetails")
            };
            let mut details = e.details.clone();
            for field in ["input", "output", "parameters"] {
                if let Some(v) = details.get_mut(field)
                    && !v.is_string()
                {
                    *v = Value::String(v.to_string());
                }
            }
            json!({"id": e.id, "timestamp": e.at, "type": e.kind, "frame": e.frame, key: details})
        })
        .collect();
    // How close the execution came to AWS's quotas: its event count and largest payload.
    json!({ "events": list, "headroom": crate::quotas::headroom(events) })
}
