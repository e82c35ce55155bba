//! Who may act: one driver per run, one holder per dataset.
//!
//! **Drivers.** A process that drives a run (`skein run`, `skein migrate`, `skein
//! rollback`) records itself in the catalog as the driver of `run:<run id>` (and `skein
//! run` also of `dir:<specs directory>`): its run id, pid and host, with a lease of
//! [`DRIVER_TTL_SECS`] that [`Renewal`] renews while the process lives. A second process
//! is refused with the driver's pid and host ([`skein_core::Error::DriverHeld`]). A driver
//! is **gone** when it released its lease, or when it ran on this host and its process no
//! longer exists (a `kill -9`): then the next process takes over at once. A driver on
//! another host whose lease expired is taken over only when asked (`--takeover`), since
//! its host may only be cut off.
//!
//! **Dataset leases.** A dataset's lease is held in the name of a run. When another run
//! holds it, [`take_dataset`] looks at that run's driver: if it is gone, the lease moves
//! over (a conditional write naming the old holder), so that a crashed `skein migrate`
//! does not lock its datasets until the lease expires; otherwise the caller is refused
//! with [`skein_core::Error::LeaseHeld`] naming the holder.
//!
//! Crash points: none of their own. A driver killed between claiming and renewing simply
//! stops renewing; a takeover is one conditional write.

use std::sync::Arc;
use std::time::Duration;

use skein_core::catalog::{Catalog, Driver};

use crate::error::Result;

/// Lease time for one migration; a crashed holder's lease expires after it.
pub const LEASE_SECS: u64 = 3600;

/// A driver's lease; renewed every third of it.
pub const DRIVER_TTL_SECS: u64 = 30;

/// This machine's name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, or `localhost`).
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// This process as the driver of `run_id`, its lease starting now.
pub fn me(run_id: &str) -> Driver {
    Driver {
        run_id: run_id.to_string(),
        pid: std::process::id(),
        host: host(),
        expires_at: unix_now() + DRIVER_TTL_SECS as i64,
    }
}

/// Whether process `pid` of this host still exists.
fn alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return true; // no /proc: cannot tell, so assume it lives
    }
    // A zombie (killed, not yet reaped by its parent) is gone too.
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A driver that can no longer act: released, or its process on this host is gone.
pub fn gone(d: &Driver) -> bool {
    d.expires_at == 0 || (d.host == host() && d.pid != std::process::id() && !alive(d.pid))
}

/// A driver whose lease ran out without renewal.
pub fn expired(d: &Driver) -> bool {
    d.expires_at <= unix_now()
}

/// Makes this process the driver of `key` for `run_id`: free, released, already ours,
/// or its driver gone (or, with `takeover`, expired). Otherwise `DriverHeld` naming it.
pub async fn claim<C: Catalog + ?Sized>(
    catalog: &C,
    key: &str,
    run_id: &str,
    takeover: bool,
) -> Result<Driver> {
    let me = me(run_id);
    match catalog.claim_driver(key, &me, None).await {
        Ok(()) => Ok(me),
        Err(e @ skein_core::Error::DriverHeld { .. }) => {
            let Some(there) = catalog.driver(key).await? else {
                return Err(e.into());
            };
            if gone(&there) || (takeover && expired(&there)) {
                tracing::warn!(
                    key,
                    pid = there.pid,
                    host = %there.host,
                    run_id = %there.run_id,
                    "taking over from a driver that is gone"
                );
                catalog.claim_driver(key, &me, Some(&there)).await?;
                Ok(me)
            } else {
                Err(there.held(key).into())
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes dataset `name`'s lease for run `holder`: free, expired, already the run's, or
/// held by a run whose driver is gone. Otherwise `LeaseHeld` naming the holder.
pub async fn take_dataset<C: Catalog + ?Sized>(
    catalog: &C,
    name: &str,
    holder: &str,
    ttl_secs: u64,
) -> Result<(), skein_core::Error> {
    match catalog.acquire_lease(name, holder, ttl_secs).await {
        Err(skein_core::Error::LeaseHeld {
            holder: other,
            dataset,
            expires,
        }) => {
            let driver = catalog.driver(&run_key(&other)).await?;
            if driver.as_ref().is_some_and(gone) {
                tracing::warn!(dataset = name, from = %other, to = holder, "taking over the lease of a run that is gone");
                catalog
                    .take_over_lease(name, &other, holder, ttl_secs)
                    .await
            } else {
                Err(skein_core::Error::LeaseHeld {
                    dataset,
                    holder: other,
                    expires,
                })
            }
        }
        other => other,
    }
}

/// The driver key of a run.
pub fn run_key(run_id: &str) -> String {
    format!("run:{run_id}")
}

/// The driver key of a directory of specs (one `skein run` at a time per directory).
pub fn dir_key(dir: &std::path::Path) -> String {
    format!("dir:{}", dir.display())
}

/// Keeps this process's driver leases alive until [`Renewal::release`]. If another process
/// took a lease over (this one was thought gone), the renewal stops the process: two
/// drivers must never act at once.
pub struct Renewal {
    keys: Vec<String>,
    run_id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Renewal {
    /// Renews `keys` for `run_id` every third of [`DRIVER_TTL_SECS`].
    pub fn start(catalog: Arc<dyn Catalog>, keys: Vec<String>, run_id: &str) -> Renewal {
        let task = {
            let keys = keys.clone();
            let run_id = run_id.to_string();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(DRIVER_TTL_SECS / 3)).await;
                    for key in &keys {
                        match catalog.claim_driver(key, &me(&run_id), None).await {
                            Ok(()) => {}
                            Err(skein_core::Error::DriverHeld { pid, host, .. }) => {
                                eprintln!(
                                    "error: pid {pid} on host `{host}` took over {key}; this process stops driving it"
                                );
                                std::process::exit(1);
                            }
                            Err(e) => tracing::warn!(key, "driver lease not renewed: {e}"),
                        }
                    }
                }
            })
        };
        Renewal {
            keys,
            run_id: run_id.to_string(),
            task,
        }
    }

    /// Stops renewing and releases the leases.
    pub async fn release<C: Catalog + ?Sized>(self, catalog: &C) -> Result<()> {
        self.task.abort();
        let me = me(&self.run_id);
        for key in &self.keys {
            catalog.release_driver(key, &me).await?;
        }
        Ok(())
    }
}
