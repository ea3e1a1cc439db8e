//! An in-memory [`Cgroups`]: a tree of paths with statistics the caller sets,
//! for tests of the code that creates pods and reads their usage.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{CgroupError, CgroupStats, Cgroups, Layout, validate_path};

/// Cgroups kept in a map. Like cgroupfs, creating a path creates its
/// ancestors, and removing a path with children fails retryably (`EBUSY`).
#[derive(Debug)]
pub struct MemoryCgroups {
    layout: Layout,
    groups: Mutex<BTreeMap<String, CgroupStats>>,
}

impl MemoryCgroups {
    pub fn new(layout: Layout) -> Self {
        MemoryCgroups {
            layout,
            groups: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets the statistics of an existing cgroup, as the kernel would
    /// update them.
    pub fn set_stats(&self, path: &str, stats: CgroupStats) -> Result<(), CgroupError> {
        let key = normalise(path)?;
        let mut groups = self.lock();
        let slot = groups
            .get_mut(&key)
            .ok_or_else(|| CgroupError::NotFound { path: key.clone() })?;
        *slot = stats;
        Ok(())
    }

    /// Every cgroup path that exists, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CgroupStats>> {
        // A panic while holding the lock leaves the map consistent: every
        // method changes it with a single insert or remove.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn normalise(path: &str) -> Result<String, CgroupError> {
    Ok(format!("/{}", validate_path(path)?.join("/")))
}

impl Cgroups for MemoryCgroups {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn create(&self, path: &str) -> Result<(), CgroupError> {
        let parts = validate_path(path)?;
        let mut groups = self.lock();
        let mut key = String::new();
        for part in parts {
            key.push('/');
            key.push_str(part);
            groups.entry(key.clone()).or_default();
        }
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<(), CgroupError> {
        let key = normalise(path)?;
        let mut groups = self.lock();
        let child_prefix = format!("{key}/");
        let busy = groups.keys().any(|k| k.starts_with(&child_prefix))
            || groups.get(&key).is_some_and(|s| s.pids > 0);
        if busy {
            return Err(CgroupError::Remove {
                path: key.into(),
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
        groups.remove(&key);
        Ok(())
    }

    fn exists(&self, path: &str) -> Result<bool, CgroupError> {
        let key = normalise(path)?;
        Ok(self.lock().contains_key(&key))
    }

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let key = normalise(path)?;
        self.lock()
            .get(&key)
            .copied()
            .ok_or(CgroupError::NotFound { path: key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_a_pod_cgroup_creates_its_parents_and_stats_start_at_zero() {
        let cg = MemoryCgroups::new(Layout::V2);
        cg.create("/flotilla/pod-a").unwrap();
        assert_eq!(cg.paths(), ["/flotilla", "/flotilla/pod-a"]);
        assert_eq!(cg.stats("/flotilla/pod-a").unwrap(), CgroupStats::default());
        assert!(cg.exists("/flotilla/").unwrap());
    }

    #[test]
    fn a_cgroup_with_children_or_tasks_is_not_removed() {
        let cg = MemoryCgroups::new(Layout::V1);
        cg.create("/flotilla/pod-a/c1").unwrap();
        let err = cg.remove("/flotilla/pod-a").unwrap_err();
        assert!(err.retry_helps(), "{err}");
        cg.set_stats(
            "/flotilla/pod-a/c1",
            CgroupStats {
                pids: 2,
                oom_kills: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(cg.remove("/flotilla/pod-a/c1").is_err());
        assert_eq!(cg.oom_kills("/flotilla/pod-a/c1").unwrap(), 1);
        cg.set_stats("/flotilla/pod-a/c1", CgroupStats::default())
            .unwrap();
        cg.remove("/flotilla/pod-a/c1").unwrap();
        cg.remove("/flotilla/pod-a").unwrap();
        cg.remove("/flotilla/pod-a").unwrap();
        assert!(matches!(
            cg.stats("/flotilla/pod-a"),
            Err(CgroupError::NotFound { .. })
        ));
    }

    #[test]
    fn stats_of_an_unknown_cgroup_cannot_be_set() {
        let cg = MemoryCgroups::new(Layout::V2);
        assert!(matches!(
            cg.set_stats("/nope", CgroupStats::default()),
            Err(CgroupError::NotFound { .. })
        ));
        assert!(matches!(
            cg.create("relative"),
            Err(CgroupError::InvalidPath { .. })
        ));
    }
}
