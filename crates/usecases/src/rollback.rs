//! Rolling a dataset back to its previous published version.

use std::time::Instant;

use skein_core::Status;
use skein_core::catalog::{Catalog, VersionAction};
use skein_core::load::SpecFile;
use skein_data::{Settings, Target};

use crate::error::Result;
use crate::outcome::{DatasetResult, Outcome};

/// Points the target back at the version before the current one (its files untouched
/// since it was published, so restored byte for byte), records it, and marks the dataset
/// `rolled_back` with the reason.
pub async fn rollback<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    run_id: &str,
    reason: &str,
) -> Result<DatasetResult> {
    let started = Instant::now();
    let name = file.name();
    let record = catalog.put_spec(&file.spec, &file.hash).await?;
    let mut result = DatasetResult::new(name, run_id, Outcome::Failed);
    let rolled = match Target::open(settings, file) {
        Ok(store) => store.rollback().await,
        Err(e) => Err(e),
    };
    match rolled {
        Ok((from, to)) => {
            catalog
                .record_version(name, VersionAction::Restored, &to)
                .await?;
            let note = format!(
                "rolled back from v{} to v{}: {reason}",
                from.version, to.version
            );
            catalog
                .transition(
                    name,
                    record.status,
                    Status::RolledBack,
                    Some(&note),
                    Some(run_id),
                )
                .await?;
            result.outcome = Outcome::RolledBack;
            result.version = Some(to.version);
            result.rows = to.rows;
            result.files = to.files.len();
            result.bytes = to.bytes;
        }
        Err(e) => {
            result.error = Some(e.to_string());
            result.error_name = Some(e.error_name().to_string());
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}
