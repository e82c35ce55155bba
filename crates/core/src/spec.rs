//! The `skein/v1` `Dataset` spec, exactly as users write it in YAML.
//!
//! Parsing is strict: an unknown field anywhere is an error, so a typo never silently
//! falls back to a default. Semantic checks live in [`crate::validate`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The only `apiVersion` this version of skein reads.
pub const API_VERSION: &str = "skein/v1";
/// The only `kind` of a dataset spec.
pub const KIND: &str = "Dataset";

/// A whole dataset spec document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatasetSpec {
    /// Must be `skein/v1`.
    pub api_version: String,
    /// Must be `Dataset`.
    pub kind: String,
    /// Name, owner and tags.
    pub metadata: Metadata,
    /// What to migrate and how.
    pub spec: Spec,
}

impl DatasetSpec {
    /// The dataset's name (`metadata.name`).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Whether a person must approve before publish: `approval: required`, or a critical
    /// dataset that does not say `approval: auto` explicitly.
    pub fn needs_approval(&self) -> bool {
        match self.spec.approval {
            Some(Approval::Required) => true,
            Some(Approval::Auto) => false,
            None => self.spec.criticality == Criticality::Critical,
        }
    }

    /// The SQL of the transform; a missing transform copies the source as it is.
    pub fn transform_sql(&self) -> &str {
        self.spec
            .transform
            .as_ref()
            .and_then(|t| t.sql.as_deref())
            .unwrap_or("SELECT * FROM source")
    }

    /// The command of a command transform, if the transform is one.
    pub fn transform_command(&self) -> Option<&Transform> {
        self.spec.transform.as_ref().filter(|t| t.command.is_some())
    }

    /// The column that identifies a row: `verify.key`, else the first `unique` rule's column.
    pub fn key_column(&self) -> Option<&str> {
        let verify = self.spec.verify.as_ref()?;
        if let Some(key) = verify.key.as_deref() {
            return Some(key);
        }
        verify.rules.iter().find_map(|r| match r {
            Rule::Unique(col) => Some(col.as_str()),
            _ => None,
        })
    }
}

/// `metadata` of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Unique dataset name, `[a-z0-9][a-z0-9._-]*`.
    pub name: String,
    /// Owning team, shown in status and the dashboard.
    #[serde(default)]
    pub owner: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A sentence on what the dataset is.
    #[serde(default)]
    pub description: Option<String>,
}

/// `spec` of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// How much a failure hurts; `critical` needs approval by default.
    #[serde(default)]
    pub criticality: Criticality,
    /// Lower runs first within a wave.
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// Worker group (fleet pool with its own concurrency cap).
    #[serde(default = "default_group")]
    pub group: String,
    /// Datasets that must be completed first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Where the data comes from.
    pub source: Source,
    /// Where the migrated data goes.
    pub target: Target,
    /// The transform: one SQL query over the table `source`.
    #[serde(default)]
    pub transform: Option<Transform>,
    /// How the result is checked before publish.
    #[serde(default)]
    pub verify: Option<Verify>,
    /// `auto` or `required`; unset means required for critical datasets only.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// `allow`: publish even when the output schema differs from the published version's
    /// (default: refuse, and report the added, removed and retyped columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<SchemaChange>,
}

/// Whether a changed output schema may be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaChange {
    Allow,
    Refuse,
}

fn default_priority() -> i64 {
    100
}

fn default_group() -> String {
    "default".to_string()
}

/// How much a failed migration of the dataset hurts.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        })
    }
}

/// Whether publish waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    Auto,
    Required,
}

/// File formats skein reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    Ndjson,
    Parquet,
    /// Avro object container files.
    Avro,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Ndjson => "ndjson",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Avro => "avro",
        })
    }
}

/// `spec.source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// `s3://…`, `file://…` or a path relative to the spec file's directory; a file or a
    /// directory/prefix of many files.
    pub uri: String,
    /// `csv`, `ndjson`, `parquet` or `avro`.
    pub format: SourceFormat,
    /// The legacy system the data lives in (reader caps apply per system).
    #[serde(default)]
    pub system: Option<String>,
    /// CSV options.
    #[serde(default)]
    pub csv: Option<CsvOptions>,
    /// A source larger than this is migrated in chunks (groups of source files, or row
    /// groups of a large Parquet file), each its own job, published together as one
    /// version. Written `256MiB`, `1GiB` or a number of bytes. Unset: one job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<ByteSize>,
    /// How CSV or NDJSON files are compressed; unset: from their extension (`.gz`,
    /// `.zst`, `.bz2`, `.xz`), else not at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<SourceCompression>,
    /// `full` (the default): every run migrates the whole source. `incremental`: the
    /// source is a directory or prefix that grows, and a run migrates only the files the
    /// published version was not made from, publishing a version of the previous one's
    /// files plus the new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SourceMode>,
    /// What an incremental run does when a file of the published version changed or
    /// disappeared: `fail` (the default: the dataset fails naming the file) or `full` (the
    /// whole source is migrated again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change: Option<OnChange>,
}

impl Source {
    /// Whether runs migrate only the new files (`mode: incremental`).
    pub fn is_incremental(&self) -> bool {
        self.mode == Some(SourceMode::Incremental)
    }
}

/// `spec.source.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    Full,
    Incremental,
}

/// `spec.source.onChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    Fail,
    Full,
}

/// `spec.source.compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceCompression {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl SourceCompression {
    /// The compression a file name's extension says, if any.
    pub fn of_name(name: &str) -> Option<SourceCompression> {
        let lower = name.to_ascii_lowercase();
        [
            (".gz", SourceCompression::Gzip),
            (".gzip", SourceCompression::Gzip),
            (".zst", SourceCompression::Zstd),
            (".zstd", SourceCompression::Zstd),
            (".bz2", SourceCompression::Bzip2),
            (".xz", SourceCompression::Xz),
        ]
        .into_iter()
        .find_map(|(ext, c)| lower.ends_with(ext).then_some(c))
    }
}

impl fmt::Display for SourceCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceCompression::Gzip => "gzip",
            SourceCompression::Zstd => "zstd",
            SourceCompression::Bzip2 => "bzip2",
            SourceCompression::Xz => "xz",
        })
    }
}

/// A size in bytes, written in specs as a number or with a unit (`512MiB`, `1GiB`, `300MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `512MiB`, `1GiB`, `300MB`, `10k`, `1048576`.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size; write e.g. 512MiB or 1GiB"))?;
        let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "kib" => 1024.0,
            "m" | "mb" => 1e6,
            "mib" => 1024.0 * 1024.0,
            "g" | "gb" => 1e9,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tb" => 1e12,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}`; use KiB, MiB, GiB or TiB"
                ));
            }
        };
        Ok(ByteSize((n * mult) as u64))
    }
}

impl fmt::Display for ByteSize {
    /// The shortest exact form: `256MiB`, `1GiB`, or plain bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// `spec.source.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CsvOptions {
    /// Whether the first line names the columns (default true).
    #[serde(default = "default_true")]
    pub header: bool,
    /// Field delimiter, one ASCII character (default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Quote character, one ASCII character (default `"`).
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Records read (across the source's files, in order) to infer the column types
    /// (default [`CsvOptions::DEFAULT_INFER_RECORDS`]). A column whose later rows do not
    /// fit the type seen in the sample fails the read with the file, line and column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infer_records: Option<u64>,
    /// Whether a quoted value may hold a line break (default true, as RFC 4180 allows).
    /// `false` promises that every line break ends a record, which lets a file larger than
    /// `chunkSize` be cut into byte ranges at line breaks; while it is true such a file
    /// is read whole, as one job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newlines_in_values: Option<bool>,
}

impl CsvOptions {
    /// Records read to infer column types when `inferRecords` is not set.
    pub const DEFAULT_INFER_RECORDS: u64 = 10_000;

    /// Records to read to infer column types.
    pub fn infer_records(&self) -> u64 {
        self.infer_records.unwrap_or(Self::DEFAULT_INFER_RECORDS)
    }

    /// Whether quoted values may hold line breaks (`newlinesInValues`, default true).
    pub fn newlines_in_values(&self) -> bool {
        self.newlines_in_values.unwrap_or(true)
    }
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: default_delimiter(),
            quote: default_quote(),
            infer_records: None,
            newlines_in_values: None,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_delimiter() -> String {
    ",".to_string()
}

fn default_quote() -> String {
    "\"".to_string()
}

/// `spec.target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    /// Where the published dataset lives (a directory or prefix).
    pub uri: String,
    /// Output format: `parquet` (the default: a directory of Parquet files per version)
    /// or `delta` (a Delta Lake table whose commit is the publish); see [`TargetFormat`].
    #[serde(default = "default_target_format")]
    pub format: String,
    /// Parquet compression (default `zstd`).
    #[serde(default)]
    pub compression: Compression,
    /// Rows per output file before a new file is started (default 10,000,000).
    #[serde(default)]
    pub max_rows_per_file: Option<u64>,
    /// A table in the Glue Data Catalog created or updated on publish and rollback, so
    /// that Athena (and any engine on the Glue catalog) reads the current version (S3
    /// targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glue: Option<GlueTable>,
    /// Output columns whose values split the data into directories (`col=value/`, Hive
    /// style) for Parquet, or a Delta table's partition columns; their values are in the
    /// paths, not in the files. Empty: not partitioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
}

/// `spec.target.glue`: where the target is registered in the Glue Data Catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlueTable {
    /// The Glue database (created when missing).
    pub database: String,
    /// The table's name.
    pub table: String,
}

fn default_target_format() -> String {
    "parquet".to_string()
}

/// The formats a target is written in (`spec.target.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetFormat {
    /// Parquet files, one directory per version; readers see the current one.
    Parquet,
    /// A Delta Lake table: Parquet files and a log whose commit is the publish.
    Delta,
}

impl TargetFormat {
    /// Every format, as written in a spec.
    pub const NAMES: [&str; 2] = ["parquet", "delta"];
}

impl Target {
    /// The target's format, `None` for a name that is not one (the validation says so).
    pub fn target_format(&self) -> Option<TargetFormat> {
        match self.format.as_str() {
            "parquet" => Some(TargetFormat::Parquet),
            "delta" => Some(TargetFormat::Delta),
            _ => None,
        }
    }

    /// True for a Delta Lake target.
    pub fn is_delta(&self) -> bool {
        self.target_format() == Some(TargetFormat::Delta)
    }
}

/// Parquet compression codecs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    Lz4,
    Gzip,
    None,
}

/// `spec.transform`: one SQL query, or a command (a migration script in any language).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Transform {
    /// One `SELECT` over the table `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// A program and its arguments (a relative program path is the spec directory's): it
    /// reads the source as an Arrow IPC stream on stdin and writes its output as one on
    /// stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// More environment for the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Parameters for the command, as `SKEIN_PARAMS` (a JSON object) and one
    /// `SKEIN_PARAM_<NAME>` each.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// How long the command may run (`90s`, `30m`, `2h`; default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The command maps each row on its own (no row depends on another), so a chunked
    /// source may send each chunk through its own process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub row_wise: bool,
}

impl Transform {
    /// A SQL transform.
    pub fn sql(sql: &str) -> Transform {
        Transform {
            sql: Some(sql.to_string()),
            ..Transform::default()
        }
    }

    /// The command's time limit: `timeout`, else one hour.
    pub fn timeout(&self) -> Result<std::time::Duration, String> {
        match &self.timeout {
            None => Ok(std::time::Duration::from_secs(3600)),
            Some(t) => parse_duration(t),
        }
    }
}

/// Parses `90s`, `30m`, `2h`, `1h30m` (whole numbers with units s, m, h).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let mut secs = 0u64;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration; write e.g. 90s, 30m or 2h"))?;
        digits.clear();
        secs += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("`{text}` has an unknown unit `{c}`; use s, m or h")),
        };
    }
    if !digits.is_empty() || secs == 0 {
        return Err(format!(
            "`{text}` is not a duration; write e.g. 90s, 30m or 2h"
        ));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// `spec.verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Verify {
    /// Row identity for diffs.
    #[serde(default)]
    pub key: Option<String>,
    /// Compare the order-independent content checksum (default true).
    #[serde(default = "default_true")]
    pub checksum: bool,
    /// Queries run on both sides (`{}` is the table); results must agree.
    #[serde(default)]
    pub sample_queries: Vec<String>,
    /// Rules the published data must satisfy.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A rule on the migrated data, written as a one-key map: `{notNull: col}`,
/// `{range: {column: c, min: 0}}`, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleRepr", into = "RuleRepr")]
pub enum Rule {
    /// The column has no nulls.
    NotNull(String),
    /// The column has no duplicate values.
    Unique(String),
    /// Values lie within `[min, max]` (either bound optional).
    Range {
        column: String,
        min: Option<serde_json::Value>,
        max: Option<serde_json::Value>,
    },
    /// Non-null values match the regular expression.
    Regex { column: String, pattern: String },
    /// Non-null values are among `values`.
    AcceptedValues {
        column: String,
        values: Vec<serde_json::Value>,
    },
}

/// How a rule is written: a map with exactly one of these keys. (YAML libraries disagree on
/// externally tagged enums; a struct of options reads the same everywhere and names the
/// allowed keys in its error.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_null: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unique: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<RangeRepr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<RegexRepr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted_values: Option<AcceptedRepr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeRepr {
    column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexRepr {
    column: String,
    pattern: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedRepr {
    column: String,
    values: Vec<serde_json::Value>,
}

impl TryFrom<RuleRepr> for Rule {
    type Error = String;

    fn try_from(r: RuleRepr) -> Result<Rule, String> {
        let mut found = Vec::new();
        if let Some(c) = r.not_null {
            found.push(Rule::NotNull(c));
        }
        if let Some(c) = r.unique {
            found.push(Rule::Unique(c));
        }
        if let Some(RangeRepr { column, min, max }) = r.range {
            found.push(Rule::Range { column, min, max });
        }
        if let Some(RegexRepr { column, pattern }) = r.regex {
            found.push(Rule::Regex { column, pattern });
        }
        if let Some(AcceptedRepr { column, values }) = r.accepted_values {
            found.push(Rule::AcceptedValues { column, values });
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(
                "a rule needs one of `notNull`, `unique`, `range`, `regex`, `acceptedValues`"
                    .into(),
            ),
            _ => Err("a rule has exactly one kind; write each kind as its own list item".into()),
        }
    }
}

impl From<Rule> for RuleRepr {
    fn from(rule: Rule) -> RuleRepr {
        let mut r = RuleRepr::default();
        match rule {
            Rule::NotNull(c) => r.not_null = Some(c),
            Rule::Unique(c) => r.unique = Some(c),
            Rule::Range { column, min, max } => r.range = Some(RangeRepr { column, min, max }),
            Rule::Regex { column, pattern } => r.regex = Some(RegexRepr { column, pattern }),
            Rule::AcceptedValues { column, values } => {
                r.accepted_values = Some(AcceptedRepr { column, values })
            }
        }
        r
    }
}

impl Rule {
    /// The column the rule is about.
    pub fn column(&self) -> &str {
        match self {
            Rule::NotNull(c) | Rule::Unique(c) => c,
            Rule::Range { column, .. }
            | Rule::Regex { column, .. }
            | Rule::AcceptedValues { column, .. } => column,
        }
    }

    /// Short name of the rule kind, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::NotNull(_) => "notNull",
            Rule::Unique(_) => "unique",
            Rule::Range { .. } => "range",
            Rule::Regex { .. } => "regex",
            Rule::AcceptedValues { .. } => "acceptedValues",
        }
    }
}
