//! Dataset statuses and the legal transitions between them.
//!
//! `pending → in_progress → migrated → verified → [awaiting_approval] → completed`, and
//! `failed` / `rolled_back` from anywhere (with a reason). A finished dataset
//! (`completed`, `failed`, `rolled_back`) may start a new attempt (`in_progress`) or be
//! re-registered (`pending`). Only a verification that passed sets `verified`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a dataset stands in its migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    InProgress,
    Migrated,
    Verified,
    AwaitingApproval,
    Completed,
    Failed,
    RolledBack,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 8] = [
        Status::Pending,
        Status::InProgress,
        Status::Migrated,
        Status::Verified,
        Status::AwaitingApproval,
        Status::Completed,
        Status::Failed,
        Status::RolledBack,
    ];

    /// The name used in the catalog, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InProgress => "in_progress",
            Status::Migrated => "migrated",
            Status::Verified => "verified",
            Status::AwaitingApproval => "awaiting_approval",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::RolledBack => "rolled_back",
        }
    }

    /// Whether no migration is under way (a new attempt may start).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::RolledBack
        )
    }

    /// Whether the lifecycle allows `self → to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (_, Failed | RolledBack)
                | (Pending, InProgress)
                | (InProgress, Migrated)
                | (Migrated, Verified)
                | (Verified, AwaitingApproval | Completed)
                | (AwaitingApproval, Completed)
                | (Completed | Failed | RolledBack, InProgress | Pending)
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Status, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`"))
    }
}
