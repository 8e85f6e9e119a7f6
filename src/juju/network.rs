//! Addresses: `network-get` and `unit-get`.
//!
//! For a client relation, the address to publish is the relation's
//! ingress address and the addresses to allow in `pg_hba.conf` are its
//! egress subnets. Passing the relation id matters for cross-model relations,
//! where Juju answers with different (public) addresses.

use super::relation::RelationId;
use super::tool::{Invocation, ToolError};

/// The address remote units should use to reach us over `binding`:
/// `network-get --format=json <binding> [-r <id>] --ingress-address`.
pub fn network_get_ingress_address(
    binding: &str,
    relation: Option<&RelationId>,
) -> Result<String, ToolError> {
    network_get(binding, relation, "--ingress-address").run_json()
}

/// The subnets remote units' traffic comes from (CIDRs):
/// `network-get --format=json <binding> [-r <id>] --egress-subnets`.
pub fn network_get_egress_subnets(
    binding: &str,
    relation: Option<&RelationId>,
) -> Result<Vec<String>, ToolError> {
    let subnets: Option<Vec<String>> =
        network_get(binding, relation, "--egress-subnets").run_json()?;
    Ok(subnets.unwrap_or_default())
}

fn network_get(binding: &str, relation: Option<&RelationId>, flag: &str) -> Invocation {
    let mut invocation = Invocation::new("network-get")
        .arg("--format=json")
        .arg(binding);
    if let Some(relation) = relation {
        invocation = invocation.arg("-r").arg(relation.to_string());
    }
    invocation.arg(flag)
}

/// The unit's private address: `unit-get --format=json private-address`.
pub fn unit_private_address() -> Result<String, ToolError> {
    Invocation::new("unit-get")
        .arg("--format=json")
        .arg("private-address")
        .run_json()
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn builds_network_get_command_lines() {
        let relation = RelationId::new("db", 4);
        let with_relation = network_get("db", Some(&relation), "--ingress-address");
        assert_eq!(
            with_relation.args(),
            ["--format=json", "db", "-r", "db:4", "--ingress-address"]
        );
        let without = network_get("", None, "--egress-subnets");
        assert_eq!(without.args(), ["--format=json", "", "--egress-subnets"]);
    }

    #[test]
    fn parses_single_flag_outputs() {
        let address: String = parse_json("\"10.5.0.17\"\n").unwrap();
        assert_eq!(address, "10.5.0.17");
        let subnets: Option<Vec<String>> = parse_json(r#"["10.5.0.17/32","10.6.0.0/16"]"#).unwrap();
        assert_eq!(subnets.unwrap(), ["10.5.0.17/32", "10.6.0.0/16"]);
    }
}
