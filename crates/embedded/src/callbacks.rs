//! The task-token port on the embedded engine's store: what `SendTaskSuccess`,
//! `SendTaskFailure` and `SendTaskHeartbeat` do on AWS, the store does for the local
//! engine (the waiting execution sees the answer by polling it).

use async_trait::async_trait;
use serde_json::Value;
use skein_core::callbacks::TaskCallbacks;
use skein_core::{Error, Result};
use skein_states::status::TokenStatus;
use skein_states::store::{Store, TokenAnswer, TokenRecord};

/// Answers the embedded engine's task tokens.
#[derive(Clone)]
pub struct EngineCallbacks {
    store: Store,
}

impl EngineCallbacks {
    pub fn new(store: Store) -> EngineCallbacks {
        EngineCallbacks { store }
    }

    fn answer(&self, token: &str, answer: TokenAnswer) -> Result<TokenRecord> {
        match self.store.answer_token(token, answer) {
            Ok(record) => Ok(record),
            Err(e) => match self.store.token(token) {
                // Unknown, or no longer waiting: AWS's TaskDoesNotExist / TaskTimedOut.
                Ok(None) => Err(Error::TokenGone {
                    reason: e.to_string(),
                }),
                Ok(Some(r)) if r.status != TokenStatus::Waiting => Err(Error::TokenGone {
                    reason: e.to_string(),
                }),
                _ => Err(Error::Backend {
                    message: e.to_string(),
                }),
            },
        }
    }
}

#[async_trait]
impl TaskCallbacks for EngineCallbacks {
    async fn succeed(&self, token: &str, output: &Value) -> Result<Option<String>> {
        let record = self.answer(token, TokenAnswer::Success(output.clone()))?;
        Ok(Some(record.execution))
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<Option<String>> {
        let answer = TokenAnswer::Failure {
            error: error.to_string(),
            cause: cause.to_string(),
        };
        Ok(Some(self.answer(token, answer)?.execution))
    }

    async fn heartbeat(&self, token: &str) -> Result<()> {
        self.answer(token, TokenAnswer::Heartbeat).map(|_| ())
    }
}
