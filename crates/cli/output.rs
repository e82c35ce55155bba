//! Human output: tables, problems, progress spinners.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use skein_core::Problem;
use skein_data::Progress;

/// Cells wider than this are cut in a [`fit_table`] (but for its last column).
const MAX_CELL: usize = 40;

/// The width lines should fit: the terminal's, else `COLUMNS`, else 160.
fn line_width() -> usize {
    if std::io::stdout().is_terminal()
        && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size()
    {
        return usize::from(w).max(60);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|w| *w >= 60)
        .unwrap_or(160)
}

/// `text` cut to `max` characters, an ellipsis marking the cut.
fn cut(text: &str, max: usize) -> (String, bool) {
    if text.chars().count() <= max {
        return (text.to_string(), false);
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    (s, true)
}

/// Prints a table whose lines fit the terminal (or `COLUMNS`, else 160 characters): long
/// cells are cut with `…`, the last column to what is left of the line. Returns whether
/// anything was cut, so the caller can say where the whole text is.
pub fn fit_table(header: &[&str], rows: &[Vec<String>]) -> bool {
    const MIN_LAST: usize = 24;
    const MIN_CELL: usize = 12;
    let width = line_width();
    // The widest cap for the other columns that leaves the last one some room.
    let mut cap = MAX_CELL;
    let widths = loop {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count().min(cap));
                }
            }
        }
        let before_last: usize = widths.iter().rev().skip(1).map(|w| w + 2).sum();
        if before_last + MIN_LAST <= width || cap <= MIN_CELL {
            break widths;
        }
        cap -= 2;
    };
    let before_last: usize = widths.iter().rev().skip(1).map(|w| w + 2).sum();
    let room = width.saturating_sub(before_last).max(MIN_LAST);
    let mut was_cut = false;
    let fitted: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            row.iter()
                .enumerate()
                .map(|(i, c)| {
                    let (c, cut_here) = cut(c, if i == last { room } else { cap });
                    was_cut |= cut_here;
                    c
                })
                .collect()
        })
        .collect();
    table(header, &fitted);
    was_cut
}

/// Prints rows as a left-aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<pad$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints problems to stderr, one per line, and a count.
pub fn problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("error: {p}");
    }
    eprintln!("{} problem(s); nothing was run", problems.len());
}

/// Thousands separators for counts.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Human byte sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A spinner on stderr showing rows written, while `progress` counts them. Hidden when
/// stderr is not a terminal or with `--quiet`/`--json`.
pub struct Spinner {
    bar: ProgressBar,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner for `label`.
    pub fn start(label: &str, progress: Arc<Progress>, hidden: bool) -> Spinner {
        let bar = if hidden || !std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                let rows = progress.rows.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                b.set_message(format!(
                    "{} rows written ({} rows/s)",
                    count(rows),
                    count((rows as f64 / secs) as u64)
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Spinner {
            bar,
            task: Some(task),
        }
    }

    /// Stops and clears the spinner.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
