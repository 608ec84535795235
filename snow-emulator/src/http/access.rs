//! The HTTP layer's one access check (catalog/acl/, `crate::acl`): the Table, Aggregate and
//! Import Set APIs, the app's endpoint and the web UI call [`authorize`] before they read or
//! change anything, so a refused request changes nothing.

use crate::acl::{self, Operation, Resource};
use crate::auth::Principal;
use crate::catalog::Catalog;
use crate::error::ApiError;

/// Ok when `who` may do `op` on `resource`; otherwise ServiceNow's 403.
pub fn authorize(
    catalog: &Catalog,
    who: &Principal,
    op: Operation,
    resource: Resource<'_>,
) -> Result<(), ApiError> {
    if acl::check(catalog, who, op, resource) {
        return Ok(());
    }
    tracing::info!(user = %who.user_name, op = op.name(), ?resource, "access denied");
    Err(denied(op))
}

/// The 403 a ServiceNow instance answers: reads and endpoint calls fail API-level ACL
/// validation; writes are "ACL Exception … Failed due to security constraints" (observed on
/// instances; see docs/platform-api.md).
pub fn denied(op: Operation) -> ApiError {
    let action = match op {
        Operation::Read | Operation::Execute => return ApiError::Forbidden,
        Operation::Create => "Insert",
        Operation::Write => "Update",
        Operation::Delete => "Delete",
    };
    ApiError::Denied {
        message: "Operation Failed".into(),
        detail: format!("ACL Exception {action} Failed due to security constraints"),
    }
}
