//! Checks of a spec that need its source: the transform plans over the source's schema,
//! and rules, key and sample queries name columns the transform outputs.

use skein_core::Problem;
use skein_core::load::SpecFile;

use crate::error::Error;
use crate::session::{Settings, list_source, register_source};
use crate::sqlguard::{check_transform, sample_query};
use crate::transform::{plan_transform, query_only};

/// Every problem of `file` that needs the SQL engine: the transform guard always; with
/// `with_source`, also planning over the source's schema and the columns it outputs.
pub async fn check_spec(settings: &Settings, file: &SpecFile, with_source: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(reason) = check_transform(file.spec.transform_sql()) {
        out.push(file.problem(
            "spec.transform.sql",
            format!("refused: {reason}"),
            "write one SELECT that reads only the table `source`",
        ));
        return out;
    }
    if let Some(t) = file.spec.transform_command()
        && let Some(program) = t.command.as_ref().and_then(|c| c.first())
        && !crate::command::exists(program, file.base_dir())
    {
        out.push(file.problem(
            "spec.transform.command",
            format!(
                "the program `{program}` is not found (a path is the spec directory's, a bare name is looked up on PATH)"
            ),
            "install it, or fix the path",
        ));
        return out;
    }
    if !with_source {
        return out;
    }
    let source = match list_source(settings, file).await {
        Ok(s) => s,
        Err(e) => {
            out.push(source_problem(file, e));
            return out;
        }
    };
    let ctx = match settings.session() {
        Ok(c) => c,
        Err(e) => {
            out.push(file.problem(
                "(engine)",
                e.to_string(),
                "this is an environment problem, not the spec's",
            ));
            return out;
        }
    };
    if let Err(e) = register_source(&ctx, file, &source).await {
        out.push(source_problem(file, e));
        return out;
    }
    let df = match plan_transform(&ctx, file).await {
        Ok(df) => df,
        Err(e) => {
            let message = match e {
                Error::Transform { message, .. } | Error::TransformRefused { message, .. } => {
                    message
                }
                other => other.to_string(),
            };
            out.push(file.problem(
                "spec.transform.sql",
                message,
                "fix the query; the source's columns are listed in the message",
            ));
            return out;
        }
    };
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let listed = columns.join(", ");
    if let Err(Error::Partition { field, message, .. }) =
        crate::partition::Partitioning::new(file, df.schema().as_arrow())
    {
        out.push(file.problem(
            &field,
            message,
            "partition by output columns of a string, integer, boolean or date type",
        ));
    }
    if let Some(verify) = &file.spec.spec.verify {
        if let Some(key) = &verify.key
            && !columns.contains(key)
        {
            out.push(file.problem(
                "spec.verify.key",
                format!("`{key}` is not an output column"),
                format!("name one of: {listed}"),
            ));
        }
        for (i, rule) in verify.rules.iter().enumerate() {
            if !columns.iter().any(|c| c == rule.column()) {
                out.push(file.problem(
                    &format!("spec.verify.rules[{i}]"),
                    format!(
                        "the {} rule names `{}`, which is not an output column",
                        rule.kind(),
                        rule.column()
                    ),
                    format!("name one of: {listed}"),
                ));
            }
        }
        if ctx.register_table("transformed", df.into_view()).is_ok() {
            for (i, q) in verify.sample_queries.iter().enumerate() {
                if let Err(e) = ctx
                    .sql_with_options(&sample_query(q, "transformed"), query_only())
                    .await
                {
                    out.push(file.problem(
                        &format!("spec.verify.sampleQueries[{i}]"),
                        format!("the query does not plan: {}", e.strip_backtrace()),
                        "fix the query; `{}` stands for the migrated table",
                    ));
                }
            }
        }
    }
    out
}

fn source_problem(file: &SpecFile, e: Error) -> Problem {
    file.problem(
        "spec.source.uri",
        e.to_string(),
        "check that the source exists and is in the declared format",
    )
}
