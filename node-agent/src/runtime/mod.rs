//! Containers through an OCI runtime's command line (crun, else runc), each
//! watched by a small shim process that reaps it, keeps its logs and records
//! its exit; and the pod sandbox's shared namespaces.
