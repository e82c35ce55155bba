//! The Step Functions error names skein raises, in one place: every crate names an error
//! through these constants, never by a literal.
//!
//! | name | raised by | meaning | the state machine |
//! | --- | --- | --- | --- |
//! | `Skein.BadRequest` | every task | the payload lacks a field or names an unknown action | rollback |
//! | `Skein.InvalidSpec` | Plan | a spec or `skein.yaml` is invalid (every problem listed) | run fails |
//! | `Skein.RunIdUsed` | Plan | the run id belongs to a run that already ended | run fails |
//! | `Skein.UnknownDataset` | every dataset task | the dataset is not in the catalog | rollback |
//! | `Skein.DependencyFailed` | CheckDependencies | a dependency did not complete | skip |
//! | `Skein.LeaseHeld` | AcquireLease, migrate worker, `skein rollback` | another live run holds the dataset's lease (a gone run's lease is taken over) | retry, then fail |
//! | `Skein.SourceUnreadable` | migrate worker | the source is missing or unreadable | rollback |
//! | `Skein.SourceChanged` | migrate worker | a file of an incremental source's published version changed or disappeared (`onChange: fail`) | rollback |
//! | `Skein.TransformFailed` | migrate worker | the transform SQL failed on the data | rollback |
//! | `Skein.BadValue` | migrate worker | a value does not convert to the target type | rollback |
//! | `Skein.StorageError` | migrate worker, publish | the target store refused a write | publish: retry (its intent resumes it), then rollback |
//! | `Skein.SchemaChanged` | migrate worker | output schema differs from the published one | rollback |
//! | `Skein.VerificationFailed` | migrate worker, Verify | a check failed (rows, checksum, rules, …) | rollback |
//! | `Skein.NotVerified` / `Skein.NotStaged` | Publish | nothing verified or staged to publish | rollback |
//! | `Skein.NotPublished` | verify, diff | the dataset has no published version yet | (CLI only) |
//! | `Skein.Rejected` | approval | a person rejected the dataset | rollback |
//! | `Skein.PublishConflict` | Publish, rollback | another publisher changed the target's current version first (S3 conditional put) | rollback |
//! | `Skein.InvalidSettings` | any data step | the S3 settings are unusable (endpoint, credentials) | rollback |
//! | `Skein.Transient` | migrate worker | the catalog or storage failed; worth a retry | retry, then rollback |
//! | `Skein.Internal` | any | a bug in skein | rollback |
//! | `Skein.MigrationFailed` | migrate worker | the migration failed for a reason without a name of its own | rollback |
//! | `Skein.DeadLettered` | dead-letter consumer | a migrate job reached its group's dead-letter queue (its workers failed or died `maxReceiveCount` times) | rollback |
//! | `Skein.Superseded` | migrate worker | a newer attempt of the dataset started (this worker's token timed out); this one stopped and changed nothing | (its token is gone: nobody hears it) |
//! | `Skein.Failed` | rollback | the failure a Rollback payload names when it names none | (recorded) |
//! | `Skein.DriverHeld` | `skein run`, `skein rollback` | another process drives the run or directory | (CLI only, exit 2) |
//! | `Skein.NothingToRollBack` | rollback | the dataset has no earlier version to restore | (CLI, dashboard) |

pub const BAD_REQUEST: &str = "Skein.BadRequest";
pub const INVALID_SPEC: &str = "Skein.InvalidSpec";
pub const RUN_ID_USED: &str = "Skein.RunIdUsed";
pub const UNKNOWN_DATASET: &str = "Skein.UnknownDataset";
pub const DEPENDENCY_FAILED: &str = "Skein.DependencyFailed";
pub const LEASE_HELD: &str = "Skein.LeaseHeld";
pub const SOURCE_UNREADABLE: &str = "Skein.SourceUnreadable";
pub const SOURCE_CHANGED: &str = "Skein.SourceChanged";
pub const TRANSFORM_FAILED: &str = "Skein.TransformFailed";
pub const BAD_VALUE: &str = "Skein.BadValue";
pub const STORAGE_ERROR: &str = "Skein.StorageError";
pub const SCHEMA_CHANGED: &str = "Skein.SchemaChanged";
pub const VERIFICATION_FAILED: &str = "Skein.VerificationFailed";
pub const NOT_VERIFIED: &str = "Skein.NotVerified";
pub const NOT_STAGED: &str = "Skein.NotStaged";
pub const NOT_PUBLISHED: &str = "Skein.NotPublished";
pub const REJECTED: &str = "Skein.Rejected";
pub const TRANSIENT: &str = "Skein.Transient";
pub const INTERNAL: &str = "Skein.Internal";
pub const MIGRATION_FAILED: &str = "Skein.MigrationFailed";
pub const PUBLISH_CONFLICT: &str = "Skein.PublishConflict";
pub const INVALID_SETTINGS: &str = "Skein.InvalidSettings";
pub const FAILED: &str = "Skein.Failed";
pub const DRIVER_HELD: &str = "Skein.DriverHeld";
pub const NOTHING_TO_ROLL_BACK: &str = "Skein.NothingToRollBack";
pub const DEAD_LETTERED: &str = "Skein.DeadLettered";
pub const SUPERSEDED: &str = "Skein.Superseded";
