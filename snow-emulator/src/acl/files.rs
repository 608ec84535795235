//! The TOML shape of `catalog/acl/*.toml` (documented in `catalog/acl/platform.toml`).

use anyhow::{Result, bail};
use serde::Deserialize;

use super::{Grant, Operation, Policy, RoleDef, Rule, RuleTarget};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default)]
    role: Vec<RoleEntry>,
    #[serde(default)]
    grant: Vec<GrantEntry>,
    #[serde(default)]
    acl: Vec<AclEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantEntry {
    user: String,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AclEntry {
    table: Option<String>,
    endpoint: Option<String>,
    operations: Vec<Operation>,
    roles: Vec<String>,
    #[serde(default)]
    description: String,
}

pub(super) fn read(policy: &mut Policy, text: &str) -> Result<()> {
    let file: AclFile = toml::from_str(text)?;
    policy.roles.extend(file.role.into_iter().map(|r| RoleDef {
        name: r.name,
        description: r.description,
    }));
    policy.grants.extend(file.grant.into_iter().map(|g| Grant {
        user: g.user,
        role: g.role,
    }));
    for entry in file.acl {
        let target = match (entry.table, entry.endpoint) {
            (Some(t), None) => RuleTarget::Table(t),
            (None, Some(e)) if e.starts_with('/') => RuleTarget::Endpoint(e),
            _ => bail!("each [[acl]] names exactly one `table` or one `endpoint` (a path)"),
        };
        if entry.roles.is_empty() || entry.operations.is_empty() {
            bail!("[[acl]] {target:?} needs at least one role and one operation");
        }
        for op in entry.operations {
            let fits = matches!(target, RuleTarget::Endpoint(_)) == (op == Operation::Execute);
            if !fits {
                bail!(
                    "[[acl]] {target:?}: tables take read/write/create/delete, endpoints execute"
                );
            }
            policy.rules.push(Rule {
                resource: target.clone(),
                operation: op,
                roles: entry.roles.clone(),
                description: entry.description.clone(),
            });
        }
    }
    Ok(())
}
