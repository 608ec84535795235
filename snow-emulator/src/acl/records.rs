//! Roles as records: `sys_user_role` (one per declared role) and `sys_user_has_role` (one
//! per grant). Seeding creates what is missing and keeps what an administrator changed, as
//! the rest of the seed does.

use anyhow::{Result, anyhow};
use rusqlite::Connection;

use crate::catalog::{Catalog, Table};
use crate::store::{self, Fields, StoreError};

fn table<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c Table, StoreError> {
    catalog
        .table(name)
        .ok_or_else(|| StoreError::Invalid(format!("the catalog has no {name} table")))
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Creates the declared roles and grants that do not exist yet (grants only for users that
/// exist).
pub fn seed(conn: &Connection, catalog: &Catalog) -> Result<()> {
    let roles = table(catalog, "sys_user_role")?;
    let has_role = table(catalog, "sys_user_has_role")?;
    let users = table(catalog, "sys_user")?;
    for role in &catalog.acl.roles {
        if store::find_exact(conn, roles, "name", &role.name)?.is_none() {
            let values = fields(&[("name", &role.name), ("description", &role.description)]);
            store::insert(conn, roles, &values, "system")?;
        }
    }
    for grant in &catalog.acl.grants {
        let Some(user) = store::find_exact(conn, users, "user_name", &grant.user)? else {
            continue;
        };
        let role = store::find_exact(conn, roles, "name", &grant.role)?
            .ok_or_else(|| anyhow!("role {} was not created", grant.role))?;
        let pair = [
            ("user", user["sys_id"].as_str()),
            ("role", role["sys_id"].as_str()),
        ];
        if store::find_by(conn, has_role, &pair)?.is_none() {
            store::insert(conn, has_role, &fields(&pair), "system")?;
        }
    }
    Ok(())
}

/// The names of the roles granted to a user (by sys_id).
pub fn user_roles(
    conn: &Connection,
    catalog: &Catalog,
    user: &str,
) -> Result<Vec<String>, StoreError> {
    let has_role = table(catalog, "sys_user_has_role")?;
    let mut q = store::EncodedQuery::default();
    q.and("user", store::Op::Eq, user);
    let grants = store::find(conn, has_role, &q, 10_000, 0)?;
    let mut names = Vec::with_capacity(grants.len());
    for g in grants {
        let role = g.get("role").map(String::as_str).unwrap_or_default();
        if !role.is_empty() {
            names.push(store::display_value(conn, catalog, "sys_user_role", role)?);
        }
    }
    Ok(names)
}
