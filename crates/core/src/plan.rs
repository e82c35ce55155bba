//! Dependency waves: every dataset runs in the wave after its last dependency.

use std::collections::BTreeMap;

use crate::spec::DatasetSpec;

/// Datasets grouped in waves: wave `n` depends only on waves `< n`. Within a wave,
/// datasets are ordered by priority (lower first), then name. Datasets in a cycle or
/// depending on an unknown dataset are put in the wave after all others (validation
/// reports the reason before anything runs).
pub fn waves<'a>(specs: &[&'a DatasetSpec]) -> Vec<Vec<&'a DatasetSpec>> {
    let by_name: BTreeMap<&str, &DatasetSpec> = specs.iter().map(|s| (s.name(), *s)).collect();
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    // longest-path layering, iterated to a fixed point (bounded by the number of specs)
    for _ in 0..=specs.len() {
        let mut changed = false;
        for s in specs {
            let l = s
                .spec
                .depends_on
                .iter()
                .filter(|d| by_name.contains_key(d.as_str()))
                .map(|d| level.get(d.as_str()).map(|l| l + 1).unwrap_or(1))
                .max()
                .unwrap_or(0);
            if level.get(s.name()) != Some(&l) {
                level.insert(s.name(), l.min(specs.len()));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let depth = level.values().copied().max().map(|m| m + 1).unwrap_or(0);
    let mut out: Vec<Vec<&DatasetSpec>> = vec![Vec::new(); depth];
    for s in specs {
        out[level[s.name()]].push(*s);
    }
    for wave in &mut out {
        wave.sort_by(|a, b| {
            a.spec
                .priority
                .cmp(&b.spec.priority)
                .then(a.name().cmp(b.name()))
        });
    }
    out.retain(|w| !w.is_empty());
    out
}
