//! The transform guard: a transform is one query that reads only the table `source`.
//!
//! DDL, DML, `COPY`, `CREATE EXTERNAL TABLE`, several statements, and table functions
//! are refused here, before anything runs; at run time the query is also planned with
//! DataFusion's `SQLOptions` forbidding DDL, DML and statements, so the guard is not the
//! only line of defence.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, Query, Statement, TableFactor, Visit, Visitor};

/// The name of the table the transform reads.
pub const SOURCE_TABLE: &str = "source";

/// Why a transform is refused, or `None` if it is one plain query over `source`.
pub fn check_transform(sql: &str) -> Option<String> {
    let mut statements = match DFParser::parse_sql(sql) {
        Ok(s) => s,
        Err(e) => return Some(format!("it does not parse: {e}")),
    };
    if statements.len() != 1 {
        return Some(format!(
            "it holds {} statements; write exactly one SELECT",
            statements.len()
        ));
    }
    let statement = statements.pop_front().expect("one statement");
    let query = match statement {
        DFStatement::Statement(s) => match *s {
            Statement::Query(q) => q,
            other => {
                return Some(format!(
                    "`{}` is not a query; only SELECT is allowed",
                    first_words(&other.to_string())
                ));
            }
        },
        DFStatement::CreateExternalTable(_) => {
            return Some(
                "CREATE EXTERNAL TABLE is not allowed; the transform sees only `source`".into(),
            );
        }
        DFStatement::CopyTo(_) => {
            return Some("COPY is not allowed; skein writes the target itself".into());
        }
        DFStatement::Explain(_) => {
            return Some("EXPLAIN is not allowed; write the SELECT itself".into());
        }
        other => {
            return Some(format!(
                "`{}` is not a query; only SELECT is allowed",
                first_words(&other.to_string())
            ));
        }
    };
    let mut guard = Guard::default();
    if let ControlFlow::Break(reason) = query.visit(&mut guard) {
        return Some(reason);
    }
    None
}

/// Names of the result columns a sample query refers to are not checked here; this only
/// makes the `{}` placeholder of a sample query a table reference.
pub fn sample_query(query: &str, table: &str) -> String {
    query.replace("{}", table)
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[derive(Default)]
struct Guard {
    ctes: BTreeSet<String>,
}

impl Visitor for Guard {
    type Break = String;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => ControlFlow::Break(format!(
                "table function `{name}` is not allowed; read only the table `source`"
            )),
            TableFactor::TableFunction { .. } | TableFactor::Function { .. } => ControlFlow::Break(
                "table functions are not allowed; read only the table `source`".into(),
            ),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        let name = relation.to_string().to_lowercase().replace('"', "");
        if name == SOURCE_TABLE || self.ctes.contains(&name) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(format!(
                "it reads `{relation}`; the transform sees only the table `source`"
            ))
        }
    }
}
