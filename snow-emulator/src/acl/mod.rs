//! Roles and access control as data (docs/platform-api.md §Roles and ACLs).
//!
//! Rules come from `catalog/acl/*.toml` (`[[role]]`, `[[grant]]`, `[[acl]]`), like
//! ServiceNow's `sys_user_role`, `sys_user_has_role` and `sys_security_acl`. A user's roles
//! are the `sys_user_has_role` records that point at them, so an administrator grants and
//! revokes roles through the Table API. Every API (Table, Aggregate, Import Set, the app's
//! endpoint, the web UI) asks [`check`]; `admin` passes every rule, as on an instance.

mod files;
mod records;

use std::collections::BTreeSet;

use anyhow::{Context, Result};

pub use records::{seed, user_roles};

use crate::catalog::Catalog;

/// The role that passes every rule.
pub const ADMIN_ROLE: &str = "admin";

/// What a rule allows (`sys_security_acl.operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    /// Calling a REST endpoint (`type = "rest_endpoint"`).
    Execute,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Delete => "delete",
            Self::Execute => "execute",
        }
    }
}

/// What a request touches.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// Records of a catalog table (the rule may name the table or one of its ancestors).
    Table(&'a str),
    /// A REST endpoint by its path (`/api/x_fls_flexera_fnms/integration/fnmstosn`).
    Endpoint(&'a str),
}

/// One access rule: `operation` on `name` for users holding any of `roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub resource: RuleTarget,
    pub operation: Operation,
    pub roles: Vec<String>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    /// A table name, or `*` for every table.
    Table(String),
    Endpoint(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    pub name: String,
    pub description: String,
}

/// A role granted to a user at seeding (`sys_user_has_role`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user: String,
    pub role: String,
}

/// Everything under `catalog/acl/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub roles: Vec<RoleDef>,
    pub grants: Vec<Grant>,
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Reads the `acl/` files of a catalog (path relative to the catalog root, text).
    pub fn parse(files: &[(String, String)]) -> Result<Self> {
        let mut policy = Self::default();
        for (path, text) in files {
            files::read(&mut policy, text).with_context(|| format!("catalog file {path}"))?;
        }
        let known: BTreeSet<&str> = policy.roles.iter().map(|r| r.name.as_str()).collect();
        for role in policy
            .rules
            .iter()
            .flat_map(|r| &r.roles)
            .chain(policy.grants.iter().map(|g| &g.role))
        {
            anyhow::ensure!(
                known.contains(role.as_str()),
                "ACL files name role {role:?}, which no [[role]] declares"
            );
        }
        Ok(policy)
    }
}

/// The caller, as the rules see it.
pub trait Subject {
    fn has_role(&self, role: &str) -> bool;
}

/// Whether `who` may perform `op` on `resource`. Admin passes everything; otherwise a rule
/// must name the resource (for tables: the table, an ancestor, or `*`) and the operation, and
/// `who` must hold one of its roles. No rule means no access (deny by default).
pub fn check(catalog: &Catalog, who: &impl Subject, op: Operation, resource: Resource<'_>) -> bool {
    if who.has_role(ADMIN_ROLE) {
        return true;
    }
    let names: Vec<&str> = match resource {
        Resource::Table(t) => lineage(catalog, t),
        Resource::Endpoint(p) => vec![p],
    };
    catalog.acl.rules.iter().any(|rule| {
        rule.operation == op
            && match (&rule.resource, resource) {
                (RuleTarget::Table(n), Resource::Table(_)) => {
                    n == "*" || names.contains(&n.as_str())
                }
                (RuleTarget::Endpoint(n), Resource::Endpoint(p)) => n == p,
                _ => false,
            }
            && rule.roles.iter().any(|r| who.has_role(r))
    })
}

/// A table and its ancestors, nearest first: a rule on a parent covers its children.
fn lineage<'c>(catalog: &'c Catalog, table: &'c str) -> Vec<&'c str> {
    let mut out = vec![table];
    let mut current = catalog.table(table);
    while let Some(parent) = current.and_then(|t| t.parent.as_deref()) {
        if out.contains(&parent) {
            break;
        }
        out.push(parent);
        current = catalog.table(parent);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Roles(&'static [&'static str]);
    impl Subject for Roles {
        fn has_role(&self, role: &str) -> bool {
            self.0.contains(&role)
        }
    }

    fn catalog() -> Catalog {
        crate::catalog::load_embedded().expect("embedded catalog")
    }

    #[test]
    fn admin_passes_and_no_rule_denies() {
        let c = catalog();
        let table = Resource::Table("oauth_credential");
        assert!(check(&c, &Roles(&["admin"]), Operation::Delete, table));
        assert!(!check(&c, &Roles(&[]), Operation::Read, table));
        let integration = Roles(&["x_fls_flexera_fnms.integration"]);
        assert!(!check(&c, &integration, Operation::Read, table));
        assert!(!check(
            &c,
            &integration,
            Operation::Delete,
            Resource::Table("sys_user")
        ));
    }

    #[test]
    fn integration_role_reads_the_readiness_tables_only() {
        let c = catalog();
        let who = Roles(&["x_fls_flexera_fnms.integration"]);
        for t in ["scheduled_import_set", "x_fls_flexera_fnms_import_run"] {
            assert!(check(&c, &who, Operation::Read, Resource::Table(t)), "{t}");
            assert!(
                !check(&c, &who, Operation::Write, Resource::Table(t)),
                "{t}"
            );
        }
        assert!(check(
            &c,
            &who,
            Operation::Execute,
            Resource::Endpoint("/api/x_fls_flexera_fnms/integration/fnmstosn")
        ));
        assert!(!check(
            &c,
            &Roles(&["oauth_user"]),
            Operation::Execute,
            Resource::Endpoint("/api/x_fls_flexera_fnms/integration/fnmstosn")
        ));
    }

    #[test]
    fn unknown_roles_are_refused() {
        let files = vec![(
            "acl/x.toml".to_owned(),
            "[[acl]]\ntable = \"t\"\noperation = \"read\"\nroles = [\"nobody\"]\n".to_owned(),
        )];
        assert!(Policy::parse(&files).is_err());
    }
}
