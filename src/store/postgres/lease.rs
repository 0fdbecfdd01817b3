//! The cluster: live nodes and leases (which node drives which webhook's queue, which
//! runs a once-per-cluster job), and the `LISTEN` connection that wakes this node.
//!
//! SKELETON — being filled in.

/// This node's place in the cluster.
pub(super) struct Cluster {}

impl Cluster {
    pub(super) fn new(_settings: &super::PgSettings) -> Cluster {
        Cluster {}
    }
}
