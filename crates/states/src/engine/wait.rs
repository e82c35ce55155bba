//! Wait: the wake-up time is committed with the frame before sleeping, so a resumed
//! execution sleeps only what is left.

use super::evaluator::Evaluator;
use super::frame::{Attempted, Run, step_after};
use super::interrupt::Interrupt;
use crate::definition::State;
use crate::store::Frame;

impl Run {
    /// Waits `Seconds` / until `Timestamp` (or their paths), then passes the input on.
    pub(super) async fn wait(
        &self,
        state: &State,
        frame: &mut Frame,
        ev: &dyn Evaluator,
    ) -> Result<Attempted, Interrupt> {
        if frame.wake_at.is_none() {
            let secs = ev.wait_seconds()?;
            frame.wake_at = Some(self.wake_in(state, secs)?);
            self.commit_for(&frame.id, vec![self.put(frame)]).await?;
        }
        if let Some(w) = frame.wake_at.clone() {
            self.sleep_until(&w).await;
        }
        let output = ev.output(None)?;
        Ok(Attempted {
            step: step_after(state, output),
            assign: ev.pass_on_assign()?,
        })
    }
}
