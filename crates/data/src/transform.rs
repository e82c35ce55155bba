//! Planning the transform, and turning execution failures into errors that name the
//! column and the value.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use regex::Regex;
use skein_core::load::SpecFile;
use skein_core::spec::CsvOptions;

use crate::error::Error;
use crate::listing::SourceFiles;
use crate::sqlguard::{SOURCE_TABLE, check_transform};

/// SQL options for user queries: no DDL, no DML, no statements.
pub fn query_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans the spec's transform over the registered `source` table.
pub async fn plan_transform(ctx: &SessionContext, file: &SpecFile) -> Result<DataFrame, Error> {
    if let Some(t) = file.spec.transform_command() {
        return crate::command::command_frame(ctx, file, t).await;
    }
    let sql = file.spec.transform_sql();
    if let Some(reason) = check_transform(sql) {
        return Err(Error::TransformRefused {
            dataset: file.name().to_string(),
            message: reason,
        });
    }
    ctx.sql_with_options(sql, query_only())
        .await
        .map_err(|e| Error::Transform {
            dataset: file.name().to_string(),
            message: e.strip_backtrace(),
        })
}

static CAST_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)(?:Cannot cast string|Cannot cast value|Cannot parse) '([^']*)'"#).unwrap()
});
static CSV_PARSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)Error while parsing value '?(.*?)'? as type '?([A-Za-z0-9()_, ]+)'? for column (\d+) at line (\d+)"#).unwrap()
});

/// Turns a failure while running the transform into the most useful error: a bad value
/// with its column (found by asking the source where the value is), an unreadable
/// source, or a transform error.
pub async fn classify_failure(
    ctx: &SessionContext,
    file: &SpecFile,
    source: &SourceFiles,
    err: DataFusionError,
) -> Error {
    let dataset = file.name().to_string();
    // A command transform's own failure says everything already (command, status, stderr).
    if let DataFusionError::External(e) = err.find_root()
        && let Some(Error::Transform { message, .. }) = e.downcast_ref::<Error>()
    {
        return Error::Transform {
            dataset,
            message: message.clone(),
        };
    }
    let message = err.strip_backtrace();
    if let Some(c) = CSV_PARSE.captures(&message) {
        let value = c[1].to_string();
        let index: usize = c[3].parse().unwrap_or(0);
        let column = match ctx.table(SOURCE_TABLE).await {
            Ok(t) => t
                .schema()
                .fields()
                .get(index)
                .map(|f| f.name().clone())
                .unwrap_or_else(|| format!("#{index}")),
            Err(_) => format!("#{index}"),
        };
        let record: u64 = c[4].parse().unwrap_or(0);
        let message = csv_value_message(file, source, &c[2], record + 1).await;
        return Error::BadValue {
            dataset,
            column,
            value,
            message,
        };
    }
    if let Some(c) = CAST_VALUE.captures(&message) {
        let value = c[1].to_string();
        let column = find_value_column(ctx, &value)
            .await
            .unwrap_or_else(|| "(unknown)".into());
        return Error::BadValue {
            dataset,
            column,
            value,
            message: first_line(&message),
        };
    }
    let lower = message.to_lowercase();
    if lower.contains("parquet")
        || lower.contains("io error")
        || lower.contains("json")
        || lower.contains("csv")
    {
        return crate::session::source_failure(file, source, first_line(&message)).await;
    }
    Error::Transform { dataset, message }
}

/// Where a CSV value that does not fit its column's inferred type is, and what to do.
/// `record` is 1-based with the header counted (the reader's row number plus one).
async fn csv_value_message(file: &SpecFile, source: &SourceFiles, ty: &str, record: u64) -> String {
    let sample = file
        .spec
        .spec
        .source
        .csv
        .as_ref()
        .map_or(CsvOptions::DEFAULT_INFER_RECORDS, |c| c.infer_records());
    let place = match source.files.as_slice() {
        [one] => {
            let line = crate::csv_source::record_line(file, source, one, record)
                .await
                .map_or_else(|| format!("record {record}"), |l| format!("line {l}"));
            format!("{line} of `{}`", source.url(one))
        }
        _ => format!(
            "record {record} of one of the {} files of {}",
            source.files.len(),
            file.spec.spec.source.uri
        ),
    };
    format!(
        "it is on {place}, and the column was read as {ty} from the first {sample} records; raise spec.source.csv.inferRecords so that the sample reaches it, or fix the file"
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

/// The first text column of `source` that holds `value`, by asking the source itself.
async fn find_value_column(ctx: &SessionContext, value: &str) -> Option<String> {
    let table = ctx.table(SOURCE_TABLE).await.ok()?;
    let fields: Vec<String> = table
        .schema()
        .fields()
        .iter()
        .filter(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        })
        .map(|f| f.name().clone())
        .collect();
    let literal = value.replace('\'', "''");
    for name in fields {
        let ident = name.replace('"', "\"\"");
        let sql = format!("SELECT 1 FROM {SOURCE_TABLE} WHERE \"{ident}\" = '{literal}' LIMIT 1");
        if let Ok(df) = ctx.sql_with_options(&sql, query_only()).await
            && let Ok(batches) = df.collect().await
            && batches.iter().any(|b| b.num_rows() > 0)
        {
            return Some(name);
        }
    }
    None
}
