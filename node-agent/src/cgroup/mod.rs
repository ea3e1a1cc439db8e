//! Pod cgroups and their usage statistics, on cgroup v1 and v2.
