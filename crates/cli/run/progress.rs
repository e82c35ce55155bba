//! What a local run shows and remembers of its progress: the live terminal view and the
//! concurrency peaks per group and source system.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use skein_core::fleet::{PlanItem, RunPlan};

/// Highest concurrency seen per group and per source system, over the whole run: the
/// peaks are kept in a small file beside the catalog, so a resumed run reports the peaks
/// of every process that drove it, not only its own.
#[derive(Default)]
pub(super) struct Peaks {
    inner: Mutex<BTreeMap<String, (u32, u32)>>,
    file: Option<PathBuf>,
}

impl Peaks {
    /// Peaks of `run_id`, starting from what earlier processes of the run recorded.
    pub(super) fn of_run(catalog_dir: &Path, run_id: &str) -> Peaks {
        let file = catalog_dir.join("peaks").join(format!("{run_id}.json"));
        let saved: BTreeMap<String, u32> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Peaks {
            inner: Mutex::new(saved.into_iter().map(|(k, p)| (k, (0, p))).collect()),
            file: Some(file),
        }
    }

    pub(super) fn enter(&self, key: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(key.to_string()).or_default();
        e.0 += 1;
        if e.0 > e.1 {
            e.1 = e.0;
            self.save(&m);
        }
    }

    pub(super) fn leave(&self, key: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = m.get_mut(key) {
            e.0 = e.0.saturating_sub(1);
        }
    }

    pub(super) fn peak(&self, key: &str) -> u32 {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).map(|e| e.1).unwrap_or(0)
    }

    /// Writes the peaks (a new peak is rare: at most the caps' sum of writes per run).
    /// Best effort: the figures are a report, never a reason to fail a run.
    pub(super) fn save(&self, m: &BTreeMap<String, (u32, u32)>) {
        let Some(file) = &self.file else { return };
        let peaks: BTreeMap<&String, u32> = m.iter().map(|(k, e)| (k, e.1)).collect();
        let tmp = file.with_extension("json.tmp");
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&peaks).unwrap_or_default()))
            .and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            tracing::debug!("cannot keep the peaks in {}: {e}", file.display());
        }
    }
}

/// The live terminal view: overall, per wave (in the message), per group.
pub(super) struct View {
    multi: MultiProgress,
    overall: ProgressBar,
    /// One bar per wave (the canary first), and which wave each dataset is in.
    waves: Vec<ProgressBar>,
    wave_of: HashMap<String, usize>,
    groups: HashMap<String, ProgressBar>,
    visible: bool,
}

impl View {
    pub(super) fn new(plan: &RunPlan, hidden: bool) -> View {
        use std::io::IsTerminal;
        let visible = !hidden && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let style = ProgressStyle::with_template(
            "{prefix:>14.bold} [{bar:30}] {pos}/{len} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let overall = multi.add(ProgressBar::new(plan.total as u64));
        overall.set_style(style.clone());
        overall.set_prefix("run");
        let mut waves = Vec::new();
        let mut wave_of = HashMap::new();
        let mut named: Vec<(String, &[PlanItem])> = Vec::new();
        if !plan.canary.is_empty() {
            named.push(("canary".into(), &plan.canary));
        }
        for w in &plan.waves {
            named.push((format!("wave {}", w.index + 1), &w.datasets));
        }
        for (i, (name, items)) in named.iter().enumerate() {
            let bar = multi.add(ProgressBar::new(items.len() as u64));
            bar.set_style(style.clone());
            bar.set_prefix(name.clone());
            for item in items.iter() {
                wave_of.insert(item.dataset.clone(), i);
            }
            waves.push(bar);
        }
        let mut per_group: BTreeMap<&str, u64> = BTreeMap::new();
        for item in plan
            .canary
            .iter()
            .chain(plan.waves.iter().flat_map(|w| w.datasets.iter()))
        {
            *per_group.entry(item.group.as_str()).or_default() += 1;
        }
        let mut groups = HashMap::new();
        for (g, n) in per_group {
            let bar = multi.add(ProgressBar::new(n));
            bar.set_style(style.clone());
            bar.set_prefix(g.to_string());
            bar.set_message(format!("cap {}", plan.groups.get(g).copied().unwrap_or(0)));
            groups.insert(g.to_string(), bar);
        }
        View {
            multi,
            overall,
            waves,
            wave_of,
            groups,
            visible,
        }
    }

    pub(super) fn finished(&self, dataset: &str, group: &str, failure: Option<&str>) {
        self.overall.inc(1);
        if let Some(bar) = self.wave_of.get(dataset).and_then(|i| self.waves.get(*i)) {
            bar.inc(1);
        }
        if let Some(bar) = self.groups.get(group) {
            bar.inc(1);
        }
        if let Some(reason) = failure {
            let line = format!("✗ {dataset}: {reason}");
            if self.visible {
                self.multi.suspend(|| eprintln!("{line}"));
            } else {
                eprintln!("{line}");
            }
        }
    }

    pub(super) fn note(&self, line: &str) {
        if self.visible {
            self.multi.suspend(|| eprintln!("{line}"));
        } else {
            eprintln!("{line}");
        }
    }

    pub(super) fn clear(&self) {
        self.overall.finish_and_clear();
        for b in &self.waves {
            b.finish_and_clear();
        }
        for b in self.groups.values() {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
