//! Re-verifying a published version against its source.

use skein_core::names;
use std::time::Instant;

use skein_core::catalog::Catalog;
use skein_core::load::SpecFile;
use skein_data::{Settings, Target};

use crate::error::Result;
use crate::outcome::{DatasetResult, Outcome};

/// Recomputes the source side (transform without writing) and checks the published
/// version against it: rows, checksum, schema, rules, sample queries. Records the
/// summary in the catalog; does not change the dataset's status.
pub async fn verify_published<C: Catalog + ?Sized>(
    catalog: &C,
    settings: &Settings,
    file: &SpecFile,
    run_id: &str,
) -> Result<DatasetResult> {
    let started = Instant::now();
    let name = file.name();
    catalog.put_spec(&file.spec, &file.hash).await?;
    let mut result = DatasetResult::new(name, run_id, Outcome::Failed);
    let checked = async {
        let store = Target::open(settings, file)?;
        let current = store
            .current()
            .await?
            .ok_or_else(|| skein_data::Error::NotPublished {
                dataset: name.to_string(),
            })?;
        let (checksum, schema) = skein_data::verify::source_checksum(settings, file).await?;
        let mut expected = current.clone();
        expected.checksum = checksum;
        expected.schema = schema;
        let report = skein_data::verify_dir(
            settings,
            file,
            &store.version_data(current.version).await?,
            &expected,
        )
        .await?;
        // Rows or content differ: find where (data-diff style), and keep the report.
        let mismatch = report
            .failures()
            .any(|c| c.name == "rows" || c.name == "checksum");
        let diff = if mismatch && file.spec.key_column().is_some() {
            let dir = store.version_data(current.version).await?;
            let d = skein_data::diff::diff(settings, file, &dir, Default::default()).await?;
            let json = serde_json::to_vec_pretty(&d).unwrap_or_default();
            let _ = store
                .save_report(&format!("{run_id}-diff.json"), json)
                .await;
            Some(d)
        } else {
            None
        };
        Ok::<_, skein_data::Error>((current, report, diff))
    }
    .await;
    match checked {
        Ok((current, report, diff)) => {
            result.diff = diff;
            catalog.set_verification(name, &report.summary()).await?;
            result.outcome = if report.passed {
                Outcome::Completed
            } else {
                Outcome::VerificationFailed
            };
            result.version = Some(current.version);
            result.rows = current.rows;
            result.files = current.files.len();
            result.bytes = current.bytes;
            if !report.passed {
                result.error = Some(format!("verification {}", report.summary()));
                result.error_name = Some(names::VERIFICATION_FAILED.into());
            }
            result.verification = Some(report);
        }
        Err(e) => {
            result.error = Some(e.to_string());
            result.error_name = Some(e.error_name().to_string());
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    Ok(result)
}
