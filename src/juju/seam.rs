//! The hook tools the client relations use, as a trait: the shell that
//! serves relations ([`crate::clients`]) talks to Juju only through
//! [`Juju`], so its decisions (who publishes where, when nothing is read,
//! the departing guard) are unit-tested against a fake, while the charm
//! uses [`HookTools`], the real tools.

use super::{RelationData, RelationId, ToolError};

/// What serving client relations asks of Juju.
pub trait Juju {
    /// `relation-ids <endpoint>`.
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<RelationId>, ToolError>;
    /// `relation-list -r <id>`: the remote units now in the relation.
    fn relation_list(&self, relation: &RelationId) -> Result<Vec<String>, ToolError>;
    /// The remote application, when Juju knows it.
    fn relation_remote_app(&self, relation: &RelationId) -> Result<Option<String>, ToolError>;
    /// `relation-get -r <id> - <unit>`.
    fn relation_get(&self, relation: &RelationId, unit: &str) -> Result<RelationData, ToolError>;
    /// `relation-get -r <id> --app - <app>`.
    fn relation_get_app(&self, relation: &RelationId, app: &str)
        -> Result<RelationData, ToolError>;
    /// `relation-set -r <id>` on this unit's bag.
    fn relation_set(&self, relation: &RelationId, data: &RelationData) -> Result<(), ToolError>;
    /// `relation-set -r <id> --app` (leader only).
    fn relation_set_app(&self, relation: &RelationId, data: &RelationData)
        -> Result<(), ToolError>;
    /// `is-leader`.
    fn is_leader(&self) -> Result<bool, ToolError>;
    /// `network-get <endpoint> -r <id> --ingress-address`.
    fn ingress_address(&self, relation: &RelationId) -> Result<String, ToolError>;
}

/// The real hook tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct HookTools;

impl Juju for HookTools {
    fn relation_ids(&self, endpoint: &str) -> Result<Vec<RelationId>, ToolError> {
        super::relation_ids(endpoint)
    }

    fn relation_list(&self, relation: &RelationId) -> Result<Vec<String>, ToolError> {
        super::relation_list(relation)
    }

    fn relation_remote_app(&self, relation: &RelationId) -> Result<Option<String>, ToolError> {
        super::relation_remote_app(relation)
    }

    fn relation_get(&self, relation: &RelationId, unit: &str) -> Result<RelationData, ToolError> {
        super::relation_get(relation, unit)
    }

    fn relation_get_app(
        &self,
        relation: &RelationId,
        app: &str,
    ) -> Result<RelationData, ToolError> {
        super::relation_get_app(relation, app)
    }

    fn relation_set(&self, relation: &RelationId, data: &RelationData) -> Result<(), ToolError> {
        super::relation_set(relation, data)
    }

    fn relation_set_app(
        &self,
        relation: &RelationId,
        data: &RelationData,
    ) -> Result<(), ToolError> {
        super::relation_set_app(relation, data)
    }

    fn is_leader(&self) -> Result<bool, ToolError> {
        super::is_leader()
    }

    fn ingress_address(&self, relation: &RelationId) -> Result<String, ToolError> {
        super::network_get_ingress_address(relation.endpoint(), Some(relation))
    }
}
