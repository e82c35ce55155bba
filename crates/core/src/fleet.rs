//! Fleet configuration (`skein.yaml` beside the specs) and the run plan built from it:
//! waves by dependency, a canary of a few low-criticality datasets, and the caps that
//! bound every level (groups, source systems, the run's Map).
//!
//! ```yaml
//! apiVersion: skein/v1
//! kind: Fleet
//! spec:
//!   maxConcurrency: 8                 # datasets in flight across the run
//!   toleratedFailurePercentage: 100   # of a wave; above it the run stops
//!   canary: {size: 2}                 # 0 disables the canary
//!   groups: {bulk-eu: {concurrency: 2}}
//!   systems: {legacy-crm: {readers: 1}}
//!   roots: [../shared-data]           # more places local sources and targets may be
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::spec::{Criticality, DatasetSpec};

/// Concurrency of a group not named in `skein.yaml`.
pub const DEFAULT_GROUP_CONCURRENCY: u32 = 2;
/// Readers of a source system not named in `skein.yaml`.
pub const DEFAULT_SYSTEM_READERS: u32 = 2;
/// The largest `maxConcurrency`: what a distributed Map allows.
pub const MAX_CONCURRENCY: u32 = 10_000;

/// `skein.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FleetFile {
    api_version: String,
    kind: String,
    #[serde(default)]
    spec: Fleet,
}

/// The fleet: caps and run policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fleet {
    /// Datasets in flight across the run (the run Map's `MaxConcurrency`).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// Failed datasets a wave tolerates, in percent, before the run stops.
    #[serde(default = "default_tolerated")]
    pub tolerated_failure_percentage: f64,
    /// The canary wave.
    #[serde(default)]
    pub canary: Canary,
    /// Worker groups and their concurrency caps.
    #[serde(default)]
    pub groups: BTreeMap<String, Group>,
    /// Source systems and their reader caps.
    #[serde(default)]
    pub systems: BTreeMap<String, System>,
    /// Directories (relative to `skein.yaml`) where local sources and targets may live
    /// besides the spec's own directory; see [`crate::paths`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roots: Vec<String>,
    /// Where datasets too large for a Lambda run (a group's own setting wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_jobs: Option<LargeJobs>,
}

/// `spec.largeJobs` (or `spec.groups.<name>.largeJobs`): a dataset whose source is larger
/// than `threshold` and is not split into chunks runs as one job in a container (`skein
/// worker` on ECS Fargate, a `skein worker --job` process locally) instead of a Lambda,
/// whose 15 minutes, 10,240 MB of memory and 10,240 MB of `/tmp` it would outgrow
/// (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>). The
/// container's size is Fargate's task size
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size>).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LargeJobs {
    /// Sources larger than this go to the container.
    pub threshold: crate::spec::ByteSize,
    /// CPU units of the task (1024 = one vCPU): 1024, 2048, 4096, 8192 or 16384.
    #[serde(default = "default_large_cpu")]
    pub cpu: u32,
    /// Memory of the task in MiB, within what Fargate pairs with `cpu`.
    #[serde(default = "default_large_memory")]
    pub memory: u32,
    /// Ephemeral storage of the task in GiB (21 to 200): the spill and staging space.
    #[serde(default = "default_large_storage")]
    pub ephemeral_storage: u32,
}

fn default_large_cpu() -> u32 {
    4096
}
fn default_large_memory() -> u32 {
    16384
}
fn default_large_storage() -> u32 {
    200
}

impl LargeJobs {
    /// What Fargate refuses in this size, worded for `field`.
    fn problems(&self, path: &Path, field: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        // Memory (MiB) Fargate accepts for each CPU value, on Linux.
        let memory = match self.cpu {
            1024 => Some((2048, 8192, 1024)),
            2048 => Some((4096, 16384, 1024)),
            4096 => Some((8192, 30720, 1024)),
            8192 => Some((16384, 61440, 4096)),
            16384 => Some((32768, 122880, 8192)),
            _ => None,
        };
        match memory {
            None => out.push(Problem::new(
                path,
                format!("{field}.cpu"),
                format!("must be 1024, 2048, 4096, 8192 or 16384, got {}", self.cpu),
                "Fargate's task sizes; 1024 is one vCPU",
            )),
            Some((lo, hi, step))
                if self.memory < lo || self.memory > hi || !self.memory.is_multiple_of(step) =>
            {
                out.push(Problem::new(
                    path,
                    format!("{field}.memory"),
                    format!(
                        "with cpu {} must be from {lo} to {hi} MiB in steps of {step}, got {}",
                        self.cpu, self.memory
                    ),
                    "Fargate pairs each CPU size with a range of memory",
                ))
            }
            Some(_) => {}
        }
        if !(21..=200).contains(&self.ephemeral_storage) {
            out.push(Problem::new(
                path,
                format!("{field}.ephemeralStorage"),
                format!("must be from 21 to 200 GiB, got {}", self.ephemeral_storage),
                "Fargate gives a task 21 to 200 GiB of ephemeral storage",
            ));
        }
        if self.threshold.0 == 0 {
            out.push(Problem::new(
                path,
                format!("{field}.threshold"),
                "must be above 0",
                "e.g. 8GiB: larger sources run in the container",
            ));
        }
        out
    }
}

/// `spec.canary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Canary {
    /// How many datasets run first; 0 disables the canary.
    #[serde(default = "default_canary")]
    pub size: usize,
}

impl Default for Canary {
    fn default() -> Canary {
        Canary {
            size: default_canary(),
        }
    }
}

/// `spec.groups.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Group {
    /// Workers of the group (jobs at once).
    pub concurrency: u32,
    /// The group's own large-job setting, in place of `spec.largeJobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_jobs: Option<LargeJobs>,
}

/// `spec.systems.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct System {
    /// Datasets reading from the system at once.
    pub readers: u32,
}

fn default_max_concurrency() -> u32 {
    8
}
fn default_tolerated() -> f64 {
    100.0
}
fn default_canary() -> usize {
    1
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet {
            max_concurrency: default_max_concurrency(),
            tolerated_failure_percentage: default_tolerated(),
            canary: Canary::default(),
            groups: BTreeMap::new(),
            systems: BTreeMap::new(),
            roots: Vec::new(),
            large_jobs: None,
        }
    }
}

impl Fleet {
    /// Reads `skein.yaml` in `dir` (defaults when there is none).
    pub fn load(dir: &Path) -> Result<Fleet, Vec<Problem>> {
        let path = dir.join(crate::load::FLEET_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Fleet::default());
        };
        Fleet::parse(&path, &text)
    }

    /// Reads and checks the text of a `skein.yaml`; `path` names the file in problems.
    pub fn parse(path: &Path, text: &str) -> Result<Fleet, Vec<Problem>> {
        let file: FleetFile = crate::yaml::from_str(text).map_err(|e| {
            vec![e.problem(path, "see the fleet section of the README for the fields")]
        })?;
        let path = path.to_path_buf();
        let mut problems = Vec::new();
        if file.api_version != "skein/v1" || file.kind != "Fleet" {
            problems.push(Problem::new(
                &path,
                "kind",
                format!(
                    "expected `apiVersion: skein/v1` and `kind: Fleet`, got `{}` / `{}`",
                    file.api_version, file.kind
                ),
                "set them as shown in the README",
            ));
        }
        let f = file.spec;
        // It becomes the run's distributed Map `MaxConcurrency`: "up to 10,000 parallel
        // child workflow executions"
        // (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html)
        if f.max_concurrency == 0 || f.max_concurrency > MAX_CONCURRENCY {
            problems.push(Problem::new(
                &path,
                "spec.maxConcurrency",
                format!(
                    "must be from 1 to {MAX_CONCURRENCY}, got {}",
                    f.max_concurrency
                ),
                "a distributed Map runs at most 10,000 child executions at once",
            ));
        }
        if !(0.0..=100.0).contains(&f.tolerated_failure_percentage) {
            problems.push(Problem::new(
                &path,
                "spec.toleratedFailurePercentage",
                "must be between 0 and 100",
                "0 stops the run at the first failure",
            ));
        }
        for (name, g) in &f.groups {
            if g.concurrency == 0 {
                problems.push(Problem::new(
                    &path,
                    format!("spec.groups.{name}.concurrency"),
                    "must be at least 1",
                    "set 1 or more",
                ));
            }
            if let Some(l) = &g.large_jobs {
                problems.extend(l.problems(&path, &format!("spec.groups.{name}.largeJobs")));
            }
        }
        if let Some(l) = &f.large_jobs {
            problems.extend(l.problems(&path, "spec.largeJobs"));
        }
        for (name, s) in &f.systems {
            if s.readers == 0 {
                problems.push(Problem::new(
                    &path,
                    format!("spec.systems.{name}.readers"),
                    "must be at least 1",
                    "set 1 or more",
                ));
            }
        }
        if problems.is_empty() {
            Ok(f)
        } else {
            Err(problems)
        }
    }

    /// The concurrency cap of a group.
    pub fn group_cap(&self, group: &str) -> u32 {
        self.groups
            .get(group)
            .map(|g| g.concurrency)
            .unwrap_or(DEFAULT_GROUP_CONCURRENCY)
    }

    /// Specs whose chunks would be too large for a Lambda: a `chunkSize` above the group's
    /// large-job threshold (chunk jobs run on the queue's Lambda; a dataset above the
    /// threshold runs in a container only when it is not chunked).
    pub fn check_specs(&self, files: &[crate::load::SpecFile]) -> Vec<Problem> {
        let mut out = Vec::new();
        for f in files {
            let s = &f.spec.spec;
            if let (Some(large), Some(chunk)) = (self.large_jobs(&s.group), s.source.chunk_size)
                && chunk.0 > large.threshold.0
            {
                out.push(f.problem(
                    "spec.source.chunkSize",
                    format!(
                        "{chunk} is above the large-job threshold {} of group `{}`: each chunk is a Lambda's job",
                        large.threshold, s.group
                    ),
                    "lower chunkSize to the threshold or below (chunks then stay Lambda-sized), or remove it to run the whole dataset in a container",
                ));
            }
        }
        out
    }

    /// Where a group's large datasets run: the group's own setting, else the fleet's.
    pub fn large_jobs(&self, group: &str) -> Option<&LargeJobs> {
        self.groups
            .get(group)
            .and_then(|g| g.large_jobs.as_ref())
            .or(self.large_jobs.as_ref())
    }

    /// The reader cap of a source system.
    pub fn system_cap(&self, system: &str) -> u32 {
        self.systems
            .get(system)
            .map(|s| s.readers)
            .unwrap_or(DEFAULT_SYSTEM_READERS)
    }
}

/// One dataset in a plan: a reference, not a payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanItem {
    pub dataset: String,
    pub group: String,
    #[serde(default)]
    pub system: Option<String>,
    pub criticality: Criticality,
    pub priority: i64,
    pub needs_approval: bool,
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Where the dataset runs if its source turns out too large for a Lambda.
    #[serde(default)]
    pub large: Option<LargeJobs>,
}

/// A wave of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wave {
    pub index: usize,
    pub datasets: Vec<PlanItem>,
}

/// What a run will do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunPlan {
    /// Datasets that run first; if one fails, the run stops.
    pub canary: Vec<PlanItem>,
    /// The other datasets, in dependency order.
    pub waves: Vec<Wave>,
    /// Caps per group (those in use).
    pub groups: BTreeMap<String, u32>,
    /// Caps per source system (those in use).
    pub systems: BTreeMap<String, u32>,
    pub max_concurrency: u32,
    pub tolerated_failure_percentage: f64,
    /// Datasets in the plan.
    pub total: usize,
}

/// Plans a run: waves by dependency, priority then name within a wave; the canary is the
/// `canary.size` least critical datasets of the first wave that need no approval and that
/// nothing else in the first wave waits for.
pub fn plan(specs: &[&DatasetSpec], fleet: &Fleet) -> RunPlan {
    let item = |s: &DatasetSpec| PlanItem {
        dataset: s.name().to_string(),
        group: s.spec.group.clone(),
        system: s.spec.source.system.clone(),
        criticality: s.spec.criticality,
        priority: s.spec.priority,
        needs_approval: s.needs_approval(),
        depends_on: s.spec.depends_on.clone(),
        large: fleet.large_jobs(&s.spec.group).cloned(),
    };
    let waves = crate::plan::waves(specs);
    let mut canary: Vec<PlanItem> = Vec::new();
    if let Some(first) = waves.first()
        && fleet.canary.size > 0
    {
        let mut candidates: Vec<&&DatasetSpec> = first
            .iter()
            .filter(|s| !s.needs_approval() && s.spec.criticality < Criticality::High)
            .collect();
        candidates.sort_by(|a, b| {
            a.spec
                .criticality
                .cmp(&b.spec.criticality)
                .then(a.spec.priority.cmp(&b.spec.priority))
                .then(a.name().cmp(b.name()))
        });
        canary = candidates
            .into_iter()
            .take(fleet.canary.size)
            .map(|s| item(s))
            .collect();
    }
    let in_canary = |name: &str| canary.iter().any(|c| c.dataset == name);
    let waves: Vec<Wave> = waves
        .iter()
        .map(|w| {
            w.iter()
                .filter(|s| !in_canary(s.name()))
                .map(|s| item(s))
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(index, datasets)| Wave { index, datasets })
        .collect();
    let mut groups = BTreeMap::new();
    let mut systems = BTreeMap::new();
    for s in specs {
        groups.insert(s.spec.group.clone(), fleet.group_cap(&s.spec.group));
        if let Some(sys) = &s.spec.source.system {
            systems.insert(sys.clone(), fleet.system_cap(sys));
        }
    }
    RunPlan {
        canary,
        waves,
        groups,
        systems,
        max_concurrency: fleet.max_concurrency,
        tolerated_failure_percentage: fleet.tolerated_failure_percentage,
        total: specs.len(),
    }
}

/// The name of a dataset's `dataset-migration` execution in run `run_id`.
///
/// Step Functions names are at most 80 characters, and a name stays taken for 90 days
/// (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>).
/// `{run}-{dataset}` is used when it fits and uses only letters, digits, `.`, `_` and `-`;
/// otherwise the name is a readable prefix of both and 12 hex digits of a hash of the
/// pair, so two datasets never share a name and any dataset name (up to 128 characters)
/// and run id (up to 80) fits.
pub fn execution_name(run_id: &str, dataset: &str) -> String {
    use sha2::{Digest, Sha256};
    const MAX: usize = 80;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let full = format!("{run_id}-{dataset}");
    if full.len() <= MAX && full.chars().all(plain) {
        return full;
    }
    let clean = |s: &str, n: usize| -> String {
        s.chars()
            .map(|c| if plain(c) { c } else { '-' })
            .take(n)
            .collect()
    };
    let digest = Sha256::digest(format!("{run_id}\n{dataset}").as_bytes());
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    // 80 = run (≤ 30) + '-' + dataset + '-' + 12 hex digits
    let run = clean(run_id, 30);
    let room = MAX - run.len() - 2 - hash.len();
    format!("{run}-{}-{hash}", clean(dataset, room))
}
