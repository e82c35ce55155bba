//! The status enums keep the spellings the store holds and the CLI prints: a change here
//! would strand executions and tokens stored by an older skein.

use skein_states::status::{ExecutionStatus, TokenStatus};

#[test]
fn execution_statuses_keep_their_spellings() {
    let table = [
        (ExecutionStatus::Running, "RUNNING"),
        (ExecutionStatus::Succeeded, "SUCCEEDED"),
        (ExecutionStatus::Failed, "FAILED"),
        (ExecutionStatus::TimedOut, "TIMED_OUT"),
        (ExecutionStatus::Aborted, "ABORTED"),
    ];
    for (status, text) in table {
        assert_eq!(status.to_string(), text);
        assert_eq!(text.parse::<ExecutionStatus>(), Ok(status));
        assert_eq!(serde_json::to_value(status).unwrap(), text);
        assert_eq!(format!("{status:<10}|"), format!("{text:<10}|"));
        assert!(status == text);
    }
    let err = "running".parse::<ExecutionStatus>().unwrap_err();
    assert_eq!(err.to_string(), "unknown execution status `running`");
}

#[test]
fn token_statuses_keep_their_spellings() {
    let table = [
        (TokenStatus::Waiting, "waiting"),
        (TokenStatus::Succeeded, "succeeded"),
        (TokenStatus::Failed, "failed"),
    ];
    for (status, text) in table {
        assert_eq!(status.to_string(), text);
        assert_eq!(text.parse::<TokenStatus>(), Ok(status));
        assert_eq!(serde_json::to_value(status).unwrap(), text);
    }
    assert!("WAITING".parse::<TokenStatus>().is_err());
}
