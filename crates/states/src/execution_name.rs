//! Execution names as Step Functions accepts them.
//!
//! `StartExecution`'s `name` is 1-80 characters and must not contain white space,
//! brackets `< > { } [ ]`, wildcards `? *`, the characters `" # % \ ^ | ~ ` $ & , ; : /`
//! or control characters (U+0000-001F, U+007F-009F):
//! <https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html#StepFunctions-StartExecution-request-name>.
//! The local engine refuses the same names, so a name that AWS would refuse fails here too.

/// The longest execution name AWS accepts.
pub const MAX_EXECUTION_NAME: usize = 80;

/// Why AWS would refuse `name` as an execution name, or `None` when it is fine.
pub fn problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars == 0 {
        return Some("an execution name must not be empty".into());
    }
    if chars > MAX_EXECUTION_NAME {
        return Some(format!(
            "execution name `{name}` has {chars} characters; AWS allows at most {MAX_EXECUTION_NAME}"
        ));
    }
    if let Some(c) = name.chars().find(|c| forbidden(*c)) {
        return Some(format!(
            "execution name `{name}` contains {c:?}, which AWS does not allow in names"
        ));
    }
    None
}

fn forbidden(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '<' | '>'
                | '{'
                | '}'
                | '['
                | ']'
                | '?'
                | '*'
                | '"'
                | '#'
                | '%'
                | '\\'
                | '^'
                | '|'
                | '~'
                | '`'
                | '$'
                | '&'
                | ','
                | ';'
                | ':'
                | '/'
        )
        || ('\u{0}'..='\u{1f}').contains(&c)
        || ('\u{7f}'..='\u{9f}').contains(&c)
}
