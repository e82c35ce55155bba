//! Backstage catalog entities for datasets: a dataset spec as a `kind: Resource` entity
//! with `spec.type: dataset`, and back.
//!
//! Everything a spec says that Backstage has no field for travels in `skein.dev/…`
//! annotations (see [`annotations`]); export adds the dataset's migration status as
//! annotations and a link to the published data, so the Backstage catalog shows where
//! each migration stands.
//!
//! **Invariant:** the round trip is lossless: `from_entity(&to_entity(&spec, status), f)`
//! equals `spec` for every valid spec, whatever the status. URIs travel verbatim (relative
//! ones stay relative; the caller decides what they are relative to). Status annotations
//! are written on export and ignored on import.
//!
//! Two mappings are not one to one on purpose: a spec without an owner is written with
//! Backstage's required `spec.owner` set to [`UNKNOWN_OWNER`], which reads back as no owner;
//! and dependencies are entity references (`resource:default/<name>`), of which import keeps
//! the `resource` ones (with or without namespace) and ignores references to other kinds.
//!
//! [`from_entity`] builds the spec struct by struct, field by field, so a field added to
//! [`skein_core::spec::Spec`] does not compile here until it has an annotation both ways.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use skein_core::load::{self, SpecFile};
use skein_core::problem::Problem;
use skein_core::spec::{
    API_VERSION, Approval, ByteSize, CsvOptions, DatasetSpec, KIND, Metadata, SchemaChange, Source,
    Spec, Target, Transform, Verify,
};
use skein_core::validate;

/// The `apiVersion` of the entities skein writes.
pub const ENTITY_API_VERSION: &str = "backstage.io/v1alpha1";
/// The entity `kind` of a dataset.
pub const ENTITY_KIND: &str = "Resource";
/// The `spec.type` of a dataset Resource.
pub const ENTITY_TYPE: &str = "dataset";
/// The `spec.owner` written for a spec without `metadata.owner` (Backstage requires one).
pub const UNKNOWN_OWNER: &str = "unknown";
/// Title of the link to the published data.
pub const PUBLISHED_LINK_TITLE: &str = "Published data";

/// The `skein.dev/…` annotation keys.
pub mod annotations {
    /// `spec.source.uri` (required).
    pub const SOURCE: &str = "skein.dev/source";
    /// `spec.source.format`: `csv`, `ndjson` or `parquet` (required).
    pub const SOURCE_FORMAT: &str = "skein.dev/source-format";
    /// `spec.source.system`.
    pub const SOURCE_SYSTEM: &str = "skein.dev/source-system";
    /// `spec.source.csv` as JSON.
    pub const SOURCE_CSV: &str = "skein.dev/source-csv";
    /// `spec.source.chunkSize` (`512MiB`, …).
    pub const SOURCE_CHUNK_SIZE: &str = "skein.dev/source-chunk-size";
    /// `spec.target.uri` (required).
    pub const TARGET: &str = "skein.dev/target";
    /// The rest of `spec.target` as a JSON object (`format`, `compression`,
    /// `maxRowsPerFile`), when any of it differs from the defaults.
    pub const TARGET_OPTIONS: &str = "skein.dev/target-options";
    /// `spec.transform.sql`.
    pub const TRANSFORM: &str = "skein.dev/transform";
    /// `spec.group`.
    pub const GROUP: &str = "skein.dev/group";
    /// `spec.criticality`.
    pub const CRITICALITY: &str = "skein.dev/criticality";
    /// `spec.priority`.
    pub const PRIORITY: &str = "skein.dev/priority";
    /// `spec.approval`: `auto` or `required`.
    pub const APPROVAL: &str = "skein.dev/approval";
    /// `spec.verify` as JSON.
    pub const VERIFY: &str = "skein.dev/verify";
    /// `spec.schemaChange`: `allow` or `refuse`.
    pub const SCHEMA_CHANGE: &str = "skein.dev/schema-change";

    /// Status (export only): the dataset's status in the catalog.
    pub const STATUS: &str = "skein.dev/status";
    /// Status (export only): the published version.
    pub const VERSION: &str = "skein.dev/version";
    /// Status (export only): rows of the published version.
    pub const ROWS: &str = "skein.dev/rows";
    /// Status (export only): summary of the last verification.
    pub const LAST_VERIFICATION: &str = "skein.dev/last-verification";
    /// Status (export only): RFC 3339 time of the last status change.
    pub const UPDATED_AT: &str = "skein.dev/updated-at";
    /// Status (export only): `spec.target.format`, `parquet` or `delta`.
    pub const TARGET_FORMAT: &str = "skein.dev/target-format";
    /// Status (export only): a Delta target's table version readers see.
    pub const TABLE_VERSION: &str = "skein.dev/table-version";
    /// Status (export only): `spec.target.glue` as `database.table`.
    pub const GLUE_TABLE: &str = "skein.dev/glue-table";

    /// Every annotation that describes the spec.
    pub const SPEC: [&str; 14] = [
        SOURCE,
        SOURCE_FORMAT,
        SOURCE_SYSTEM,
        SOURCE_CSV,
        SOURCE_CHUNK_SIZE,
        TARGET,
        TARGET_OPTIONS,
        TRANSFORM,
        GROUP,
        CRITICALITY,
        PRIORITY,
        APPROVAL,
        VERIFY,
        SCHEMA_CHANGE,
    ];
    /// Every annotation that reports status (ignored on import).
    pub const STATUS_KEYS: [&str; 8] = [
        STATUS,
        VERSION,
        ROWS,
        LAST_VERIFICATION,
        UPDATED_AT,
        TARGET_FORMAT,
        TABLE_VERSION,
        GLUE_TABLE,
    ];
    /// The prefix of every skein annotation.
    pub const PREFIX: &str = "skein.dev/";
}

use annotations as a;

/// A Backstage catalog entity, as much of it as skein reads and writes. Fields skein does
/// not know are ignored when reading (entities carry many more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    /// `backstage.io/v1alpha1` for the entities skein writes.
    pub api_version: String,
    /// `Resource` for datasets.
    pub kind: String,
    /// Name, description, annotations, tags, links.
    pub metadata: EntityMetadata,
    /// Type, owner, system, dependencies.
    #[serde(default)]
    pub spec: EntitySpec,
}

/// `metadata` of an entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityMetadata {
    /// The entity's name; the dataset's name.
    pub name: String,
    /// The dataset's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `skein.dev/…` annotations (and any others the entity has).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The dataset's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Links shown on the entity page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// A link shown on an entity's page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Where it points.
    pub url: String,
    /// What it is called.
    #[serde(default)]
    pub title: String,
}

/// `spec` of an entity; every field is optional when reading, as other kinds lack them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitySpec {
    /// `dataset` for datasets.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Owning team (an entity reference in Backstage).
    #[serde(default)]
    pub owner: String,
    /// The Backstage system the entity belongs to; not written by skein, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Entity references of what this entity depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// What export says about a dataset's migration, from its catalog record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityStatus {
    /// Status name, e.g. `completed`.
    pub status: String,
    /// Currently published version.
    pub version: Option<u64>,
    /// Rows of the published version.
    pub rows: Option<u64>,
    /// Summary of the last verification.
    pub last_verification: Option<String>,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// A Delta target's table version readers see (its newest commit).
    pub table_version: Option<u64>,
}

/// Whether the entity describes a dataset (`kind: Resource`, `spec.type: dataset`); other
/// entities are not skein's and are skipped on import.
pub fn is_dataset(e: &Entity) -> bool {
    e.kind.eq_ignore_ascii_case(ENTITY_KIND) && e.spec.type_ == ENTITY_TYPE
}

/// The entity reference of a dataset, as written in `spec.dependsOn`.
pub fn entity_ref(name: &str) -> String {
    format!("resource:default/{name}")
}

/// The entity for a spec, with its migration status when given.
pub fn to_entity(spec: &DatasetSpec, status: Option<&EntityStatus>) -> Entity {
    let s = &spec.spec;
    let mut ann = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        ann.insert(key.to_string(), value);
    };
    put(a::SOURCE, s.source.uri.clone());
    put(a::SOURCE_FORMAT, s.source.format.to_string());
    if let Some(system) = &s.source.system {
        put(a::SOURCE_SYSTEM, system.clone());
    }
    if let Some(csv) = &s.source.csv {
        put(a::SOURCE_CSV, to_json(csv));
    }
    if let Some(size) = s.source.chunk_size {
        put(a::SOURCE_CHUNK_SIZE, size.to_string());
    }
    put(a::TARGET, s.target.uri.clone());
    if let Some(options) = target_options(&s.target) {
        put(a::TARGET_OPTIONS, options);
    }
    // A command transform (a script beside the spec) has no annotation: only SQL travels.
    if let Some(sql) = s.transform.as_ref().and_then(|t| t.sql.clone()) {
        put(a::TRANSFORM, sql);
    }
    put(a::GROUP, s.group.clone());
    put(a::CRITICALITY, s.criticality.to_string());
    put(a::PRIORITY, s.priority.to_string());
    if let Some(approval) = s.approval {
        put(
            a::APPROVAL,
            match approval {
                Approval::Auto => "auto",
                Approval::Required => "required",
            }
            .to_string(),
        );
    }
    if let Some(verify) = &s.verify {
        put(a::VERIFY, to_json(verify));
    }
    if let Some(change) = s.schema_change {
        put(
            a::SCHEMA_CHANGE,
            match change {
                SchemaChange::Allow => "allow",
                SchemaChange::Refuse => "refuse",
            }
            .to_string(),
        );
    }
    let mut links = Vec::new();
    if let Some(st) = status {
        put(a::STATUS, st.status.clone());
        if let Some(v) = st.version {
            put(a::VERSION, v.to_string());
            links.push(Link {
                url: link_url(&s.target.uri),
                title: PUBLISHED_LINK_TITLE.to_string(),
            });
        }
        if let Some(rows) = st.rows {
            put(a::ROWS, rows.to_string());
        }
        if let Some(summary) = &st.last_verification {
            put(a::LAST_VERIFICATION, summary.clone());
        }
        put(a::UPDATED_AT, st.updated_at.clone());
        put(a::TARGET_FORMAT, s.target.format.clone());
        if let Some(v) = st.table_version {
            put(a::TABLE_VERSION, v.to_string());
        }
        if let Some(g) = &s.target.glue {
            put(a::GLUE_TABLE, format!("{}.{}", g.database, g.table));
        }
    }
    Entity {
        api_version: ENTITY_API_VERSION.to_string(),
        kind: ENTITY_KIND.to_string(),
        metadata: EntityMetadata {
            name: spec.metadata.name.clone(),
            description: spec.metadata.description.clone(),
            annotations: ann,
            tags: spec.metadata.tags.clone(),
            links,
        },
        spec: EntitySpec {
            type_: ENTITY_TYPE.to_string(),
            owner: spec
                .metadata
                .owner
                .clone()
                .unwrap_or_else(|| UNKNOWN_OWNER.to_string()),
            system: None,
            depends_on: s.depends_on.iter().map(|d| entity_ref(d)).collect(),
        },
    }
}

/// A spec part as compact JSON: the fields that equal their defaults are left out (a field
/// is dropped only if reading the JSON back without it gives the same value, so this stays
/// exact whatever the defaults are).
fn compact<T: Serialize + DeserializeOwned + PartialEq>(value: &T) -> serde_json::Value {
    // Serializing the spec types cannot fail (string keys only); `Null` would be reported
    // as a bad annotation on import rather than panic here.
    let mut json = serde_json::to_value(value).unwrap_or_default();
    if let Some(object) = json.as_object() {
        let mut object = object.clone();
        for key in object.keys().cloned().collect::<Vec<_>>() {
            let mut without = object.clone();
            without.remove(&key);
            let same = serde_json::from_value::<T>(serde_json::Value::Object(without.clone()))
                .is_ok_and(|v| v == *value);
            if same {
                object = without;
            }
        }
        json = serde_json::Value::Object(object);
    }
    json
}

/// JSON text of a spec part, without its default fields.
fn to_json<T: Serialize + DeserializeOwned + PartialEq>(value: &T) -> String {
    compact(value).to_string()
}

/// The target's fields other than `uri` as a JSON object, or `None` when all are defaults.
fn target_options(target: &Target) -> Option<String> {
    let mut json = compact(target);
    let object = json.as_object_mut()?;
    object.remove("uri");
    if object.is_empty() {
        None
    } else {
        Some(json.to_string())
    }
}

/// A URL for a link to `uri`: absolute paths become `file://` URLs, the rest is kept.
fn link_url(uri: &str) -> String {
    if !uri.contains("://") && Path::new(uri).is_absolute() {
        format!("file://{uri}")
    } else {
        uri.to_string()
    }
}

/// The spec an entity describes, or every problem with it (missing or malformed
/// annotations, and the checks every spec passes). `file` names where the entity was read.
pub fn from_entity(e: &Entity, file: &Path) -> Result<DatasetSpec, Vec<Problem>> {
    let mut r = Reader {
        entity: e,
        file,
        problems: Vec::new(),
    };
    if !is_dataset(e) {
        r.problems.push(Problem::new(
            file,
            "kind",
            format!(
                "entity `{}` is a {} of type `{}`, not a dataset",
                e.metadata.name, e.kind, e.spec.type_
            ),
            "only `kind: Resource` entities with `spec.type: dataset` describe datasets",
        ));
        return Err(r.problems);
    }
    r.unknown_annotations();
    let source_uri = r.required(a::SOURCE, "the source's URI (a file or directory)");
    let format = r.required(a::SOURCE_FORMAT, "csv, ndjson or parquet");
    let format = format.and_then(|f| r.word(a::SOURCE_FORMAT, f, "csv, ndjson or parquet"));
    let csv: Option<CsvOptions> = r.json(a::SOURCE_CSV);
    let chunk_size = match r.optional(a::SOURCE_CHUNK_SIZE) {
        Some(v) => match ByteSize::parse(v) {
            Ok(size) => Some(size),
            Err(e) => {
                r.problem(a::SOURCE_CHUNK_SIZE, e, "write e.g. 512MiB or 1GiB");
                None
            }
        },
        None => None,
    };
    let target_uri = r.required(a::TARGET, "the URI the dataset is published to");
    let target = target_uri.and_then(|uri| r.target(uri));
    let criticality = match r.optional(a::CRITICALITY) {
        Some(c) => r.word(a::CRITICALITY, c, "low, medium, high or critical"),
        None => Some(Default::default()),
    };
    let approval = match r.optional(a::APPROVAL) {
        Some(v) => r.word(a::APPROVAL, v, "auto or required").map(Some),
        None => Some(None),
    };
    let priority = match r.optional(a::PRIORITY) {
        Some(p) => match p.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                r.problem(
                    a::PRIORITY,
                    format!("`{p}` is not a whole number"),
                    "write a priority such as \"10\" (lower runs first)",
                );
                None
            }
        },
        None => Some(100),
    };
    let verify: Option<Verify> = r.json(a::VERIFY);
    let schema_change = match r.optional(a::SCHEMA_CHANGE) {
        Some(v) => r.word(a::SCHEMA_CHANGE, v, "allow or refuse").map(Some),
        None => Some(None),
    };
    let mut problems = r.problems;
    let (
        Some(source_uri),
        Some(format),
        Some(target),
        Some(criticality),
        Some(approval),
        Some(priority),
        Some(schema_change),
    ) = (
        source_uri,
        format,
        target,
        criticality,
        approval,
        priority,
        schema_change,
    )
    else {
        return Err(problems); // each missing value was reported
    };
    if !problems.is_empty() {
        return Err(problems); // a malformed optional annotation
    }
    let ann = &e.metadata.annotations;
    let owner = Some(e.spec.owner.clone()).filter(|o| !o.is_empty() && o != UNKNOWN_OWNER);
    let spec = DatasetSpec {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata: Metadata {
            name: e.metadata.name.clone(),
            owner,
            tags: e.metadata.tags.clone(),
            description: e.metadata.description.clone(),
        },
        spec: Spec {
            criticality,
            priority,
            group: ann
                .get(a::GROUP)
                .cloned()
                .unwrap_or_else(|| "default".to_string()),
            depends_on: e
                .spec
                .depends_on
                .iter()
                .filter_map(|r| dependency(r))
                .collect(),
            source: Source {
                uri: source_uri.to_string(),
                format,
                system: ann.get(a::SOURCE_SYSTEM).cloned(),
                csv,
                chunk_size,
                compression: None,
                mode: None,
                on_change: None,
            },
            target,
            transform: ann.get(a::TRANSFORM).map(|sql| Transform::sql(sql)),
            verify,
            approval,
            schema_change,
        },
    };
    let checked = SpecFile {
        path: file.to_path_buf(),
        text: String::new(),
        hash: load::spec_hash(&spec),
        spec,
    };
    problems.extend(
        validate::check_file(&checked)
            .into_iter()
            .map(|p| spec_problem(p, &e.metadata.name)),
    );
    if problems.is_empty() {
        Ok(checked.spec)
    } else {
        Err(problems)
    }
}

/// The dataset a `spec.dependsOn` reference names, if it is a Resource (`resource:ns/name`,
/// `resource:name`, or a bare `name`).
fn dependency(reference: &str) -> Option<String> {
    let rest = match reference.split_once(':') {
        Some((kind, rest)) if kind.eq_ignore_ascii_case(ENTITY_KIND) => rest,
        Some(_) => return None,
        None => reference,
    };
    let name = rest.rsplit_once('/').map(|(_, n)| n).unwrap_or(rest);
    Some(name.to_string())
}

/// A spec check's problem, said in terms of the entity: the annotation that holds the field.
fn spec_problem(mut p: Problem, entity: &str) -> Problem {
    let f = p.field.as_str();
    let key = if f == "spec.source.uri" {
        Some(a::SOURCE)
    } else if f.starts_with("spec.source.csv") {
        Some(a::SOURCE_CSV)
    } else if f == "spec.source.system" {
        Some(a::SOURCE_SYSTEM)
    } else if f == "spec.source.chunkSize" {
        Some(a::SOURCE_CHUNK_SIZE)
    } else if f == "spec.target.uri" {
        Some(a::TARGET)
    } else if f.starts_with("spec.target.") {
        Some(a::TARGET_OPTIONS)
    } else if f.starts_with("spec.transform") {
        Some(a::TRANSFORM)
    } else if f == "spec.group" {
        Some(a::GROUP)
    } else if f.starts_with("spec.verify") {
        Some(a::VERIFY)
    } else {
        None
    };
    if let Some(key) = key {
        p.message = format!("{} (`{f}` of the spec)", p.message);
        p.field = annotation_field(key);
    }
    p.message = format!("entity `{entity}`: {}", p.message);
    p
}

/// The problem field of an annotation.
fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

/// Reads annotations of one entity, collecting problems.
struct Reader<'a> {
    entity: &'a Entity,
    file: &'a Path,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    fn problem(&mut self, key: &str, message: String, hint: impl Into<String>) {
        self.problems.push(Problem::new(
            self.file,
            annotation_field(key),
            format!("entity `{}`: {message}", self.entity.metadata.name),
            hint,
        ));
    }

    fn optional(&self, key: &str) -> Option<&'a str> {
        self.entity
            .metadata
            .annotations
            .get(key)
            .map(String::as_str)
    }

    fn required(&mut self, key: &str, what: &str) -> Option<&'a str> {
        let value = self.optional(key);
        if value.is_none() {
            self.problem(
                key,
                format!("the annotation `{key}` is missing"),
                format!("add `{key}: <{what}>` under metadata.annotations"),
            );
        }
        value
    }

    /// A one-word enum value (`csv`, `critical`, …).
    fn word<T: DeserializeOwned>(&mut self, key: &str, value: &str, allowed: &str) -> Option<T> {
        match serde_json::from_value(serde_json::Value::String(value.to_string())) {
            Ok(v) => Some(v),
            Err(_) => {
                self.problem(
                    key,
                    format!("`{value}` is not one of {allowed}"),
                    format!("write one of {allowed}"),
                );
                None
            }
        }
    }

    /// A JSON annotation, parsed with the spec's strict rules.
    fn json<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let text = self.optional(key)?;
        match serde_json::from_str(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(
                    key,
                    format!("the annotation `{key}` is not valid: {e}"),
                    "write it as the JSON of that part of a skein spec; `skein catalog export` shows examples",
                );
                None
            }
        }
    }

    /// `spec.target`: the URI plus the options object, if any.
    fn target(&mut self, uri: &str) -> Option<Target> {
        let mut options = match self.optional(a::TARGET_OPTIONS) {
            Some(_) => self.json::<serde_json::Value>(a::TARGET_OPTIONS)?,
            None => serde_json::json!({}),
        };
        let Some(object) = options.as_object_mut() else {
            self.problem(
                a::TARGET_OPTIONS,
                format!(
                    "the annotation `{}` is not a JSON object",
                    a::TARGET_OPTIONS
                ),
                r#"write e.g. {"compression": "snappy", "maxRowsPerFile": 1000000}"#,
            );
            return None;
        };
        if object.contains_key("uri") {
            self.problem(
                a::TARGET_OPTIONS,
                format!("the annotation `{}` must not hold `uri`", a::TARGET_OPTIONS),
                format!("give the target's URI in `{}` only", a::TARGET),
            );
            return None;
        }
        object.insert("uri".into(), serde_json::Value::String(uri.to_string()));
        match serde_json::from_value(options) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(
                    a::TARGET_OPTIONS,
                    format!("the annotation `{}` is not valid: {e}", a::TARGET_OPTIONS),
                    "allowed fields are format, compression and maxRowsPerFile",
                );
                None
            }
        }
    }

    /// `skein.dev/…` annotations that are neither spec nor status: likely typos.
    fn unknown_annotations(&mut self) {
        let unknown: Vec<String> = self
            .entity
            .metadata
            .annotations
            .keys()
            .filter(|k| {
                k.starts_with(a::PREFIX)
                    && !a::SPEC.contains(&k.as_str())
                    && !a::STATUS_KEYS.contains(&k.as_str())
            })
            .cloned()
            .collect();
        for key in unknown {
            self.problem(
                &key,
                format!("unknown annotation `{key}`"),
                format!(
                    "remove it or fix its spelling; skein reads {}",
                    a::SPEC.join(", ")
                ),
            );
        }
    }
}

/// Reads every entity of a (multi-document, `---` separated) catalog file. Empty documents
/// are skipped; every document that is not an entity is a problem.
pub fn parse_entities(text: &str, file: &Path) -> Result<Vec<Entity>, Vec<Problem>> {
    let mut entities = Vec::new();
    let mut problems = Vec::new();
    for (i, doc) in skein_core::yaml::documents::<Entity>(text)
        .into_iter()
        .enumerate()
    {
        match doc {
            Ok(Some(e)) => entities.push(e),
            Ok(None) => {}
            Err(err) => {
                let mut p = Problem::new(
                    file,
                    format!("(document {})", i + 1),
                    err.message,
                    "fix the entity: it needs apiVersion, kind and metadata.name, and annotation values are strings",
                );
                p.line = err.line;
                problems.push(p);
            }
        }
    }
    if problems.is_empty() {
        Ok(entities)
    } else {
        Err(problems)
    }
}

/// Entities as one multi-document YAML text, each document starting with `---`.
pub fn render_entities(entities: &[Entity]) -> String {
    let mut out = String::new();
    for e in entities {
        out.push_str("---\n");
        // Serializing plain structs of strings cannot fail.
        out.push_str(&serde_yaml_ng::to_string(e).unwrap_or_default());
    }
    out
}

/// A spec as skein spec YAML, as `skein run`/`skein migrate` read it, without the fields
/// that are unset or empty (kept if leaving them out would read back differently).
pub fn render_spec(spec: &DatasetSpec) -> String {
    // Serializing the spec types cannot fail (string keys only).
    let Ok(full) = serde_yaml_ng::to_value(spec) else {
        return serde_yaml_ng::to_string(spec).unwrap_or_default();
    };
    let mut compact = full.clone();
    drop_empty(&mut compact);
    let same = serde_yaml_ng::from_value::<DatasetSpec>(compact.clone()).is_ok_and(|s| s == *spec);
    serde_yaml_ng::to_string(if same { &compact } else { &full }).unwrap_or_default()
}

/// Removes map entries whose value is null or an empty list, at every depth.
fn drop_empty(value: &mut serde_yaml_ng::Value) {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => {
            map.retain(|_, v| !(v.is_null() || v.as_sequence().is_some_and(|s| s.is_empty())));
            for v in map.values_mut() {
                drop_empty(v);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(drop_empty),
        _ => {}
    }
}

/// The 1-based line of a problem's field within the entity named `entity` in `text`: the
/// annotation's line, else the entity's `name:` line. Best effort, for pointing at it.
pub fn locate(text: &str, entity: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let is_name = |l: &str| {
        let t = l.trim();
        t.strip_prefix("name:")
            .map(|v| v.trim().trim_matches(['"', '\'']) == entity)
            .unwrap_or(false)
    };
    let start = lines.iter().position(|l| is_name(l))?;
    let doc_start = lines[..start]
        .iter()
        .rposition(|l| l.starts_with("---"))
        .map(|i| i + 1)
        .unwrap_or(0);
    let doc_end = lines[start..]
        .iter()
        .position(|l| l.starts_with("---"))
        .map(|i| start + i)
        .unwrap_or(lines.len());
    let key = field
        .strip_prefix("metadata.annotations[")
        .and_then(|k| k.strip_suffix(']'));
    if let Some(key) = key {
        for (i, l) in lines.iter().enumerate().take(doc_end).skip(doc_start) {
            let t = l.trim_start().trim_start_matches(['"', '\'']);
            if t.starts_with(key)
                && t[key.len()..]
                    .trim_start_matches(['"', '\''])
                    .starts_with(':')
            {
                return Some(i + 1);
            }
        }
    }
    Some(start + 1)
}

/// A spec read from `catalog_file`, its relative URIs made absolute against the file's
/// directory (as [`load::absolutize`] does for spec files), so it means the same wherever
/// it is registered or written.
pub fn resolved_spec_file(spec: DatasetSpec, catalog_file: &Path) -> SpecFile {
    let mut file = SpecFile {
        path: catalog_file.to_path_buf(),
        text: String::new(),
        hash: load::spec_hash(&spec),
        spec,
    };
    load::absolutize(&mut file);
    file
}
