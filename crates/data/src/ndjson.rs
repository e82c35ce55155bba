//! NDJSON sources: when a read fails, the file and line that made it fail.
//!
//! The JSON readers parse line by line (schema inference) or as one token stream (the
//! read), so their messages say "line 1" or no line at all. After a failure, the source
//! is read again one line at a time to name the first line that is not a JSON object.

use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::listing::SourceFiles;

/// The first line of the source that is not one JSON object: file (as DataFusion reads
/// it), 1-based line number, and what is wrong with it.
pub(crate) async fn first_bad_line(source: &SourceFiles) -> Option<(String, u64, String)> {
    for name in &source.files {
        let (store, path) = source.object(name).ok()?;
        let mut stream = store.get(&path).await.ok()?.into_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut line = 0u64;
        let mut ended = false;
        while !ended {
            match stream.next().await {
                Some(Ok(chunk)) => pending.extend_from_slice(chunk.as_ref()),
                Some(Err(_)) => return None,
                None => ended = true,
            }
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                line += 1;
                if let Some(why) = bad(&pending[start..start + end]) {
                    return Some((source.url(name), line, why));
                }
                start += end + 1;
            }
            pending.drain(..start);
            if ended && !pending.is_empty() {
                line += 1;
                if let Some(why) = bad(&pending) {
                    return Some((source.url(name), line, why));
                }
            }
        }
    }
    None
}

/// What is wrong with one NDJSON line, if anything (blank lines are allowed).
fn bad(line: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t.trim(),
        Err(e) => return Some(format!("it is not UTF-8 ({e})")),
    };
    if text.is_empty() {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => None,
        Ok(_) => Some("it is JSON but not an object (`{...}`)".into()),
        Err(e) => Some(format!(
            "it is not valid JSON: {} at column {}",
            without_position(&e.to_string()),
            e.column()
        )),
    }
}

/// serde_json's message without its " at line L column C" (the line is the file's here).
fn without_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |i| &message[..i])
}

/// The message for a bad line.
pub(crate) fn bad_line_message(line: u64, why: &str) -> String {
    format!("line {line}: {why}; fix or remove that line")
}
