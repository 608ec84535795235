//! Credentials: users' passwords (sys_user.user_password), OAuth clients (oauth_entity)
//! and issued tokens (oauth_credential). Passwords and client secrets are stored as argon2id
//! hashes (PHC strings) and verified in constant time; tokens as SHA-256 digests, because they
//! are long random strings and must be found through an index.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::store::{self, Fields, StoreError};

/// Length of issued tokens; ServiceNow's refresh tokens are about 86 characters.
const TOKEN_LEN: usize = 86;

/// The instance's time for token expiry: the one place auth reads the clock.
fn now() -> DateTime<Utc> {
    crate::clock::now()
}

fn now_string() -> String {
    crate::clock::format(now())
}

fn after_seconds(seconds: i64) -> String {
    crate::clock::format(now() + chrono::Duration::seconds(seconds))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one function that turns a secret into what is stored (argon2id, random salt).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .expect("16 bytes always encode as a salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2 with default parameters hashes any input")
}

/// Verified (stored hash, digest of the candidate) pairs. Argon2 is deliberately slow; an
/// API client sends the same Basic credentials on every request, so a verdict is kept until
/// the stored hash changes (a new password is a new key).
type Verdicts = HashMap<(String, [u8; 32]), bool>;
static VERDICTS: Mutex<Option<Verdicts>> = Mutex::new(None);
const VERDICTS_MAX: usize = 4096;

pub fn verify_password(stored: &str, password: &str) -> bool {
    let key = (
        stored.to_owned(),
        Sha256::digest(password.as_bytes()).into(),
    );
    {
        let cache = VERDICTS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = cache.as_ref().and_then(|c| c.get(&key)) {
            return *v;
        }
    }
    // PasswordVerifier compares the digests in constant time.
    let verdict = PasswordHash::new(stored).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    });
    let mut cache = VERDICTS.lock().unwrap_or_else(PoisonError::into_inner);
    let map = cache.get_or_insert_with(HashMap::new);
    if map.len() >= VERDICTS_MAX {
        map.clear();
    }
    map.insert(key, verdict);
    verdict
}

pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn random_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(TOKEN_LEN)
        .map(char::from)
        .collect()
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub sys_id: String,
    pub user_name: String,
    /// Role names from `sys_user_has_role`.
    pub roles: Vec<String>,
    pub admin: bool,
    /// "Web service access only": API calls yes, the web UI's pages no.
    pub web_service_only: bool,
}

impl crate::acl::Subject for Principal {
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// The caller behind an active user record, with their roles.
fn principal(
    conn: &Connection,
    catalog: &Catalog,
    user: &Fields,
) -> Result<Option<Principal>, StoreError> {
    if user.get("active").map(String::as_str) != Some("true") {
        return Ok(None);
    }
    let (Some(sys_id), Some(user_name)) = (user.get("sys_id"), user.get("user_name")) else {
        return Ok(None);
    };
    let roles = crate::acl::user_roles(conn, catalog, sys_id)?;
    Ok(Some(Principal {
        sys_id: sys_id.clone(),
        user_name: user_name.clone(),
        admin: roles.iter().any(|r| r == crate::acl::ADMIN_ROLE),
        roles,
        web_service_only: user.get("web_service_access_only").map(String::as_str) == Some("true"),
    }))
}

fn table<'c>(catalog: &'c Catalog, name: &str) -> Result<&'c crate::catalog::Table, StoreError> {
    catalog
        .table(name)
        .ok_or_else(|| StoreError::Invalid(format!("the catalog has no {name} table")))
}

/// Basic authentication: user name and password.
pub fn basic(
    conn: &Connection,
    catalog: &Catalog,
    user_name: &str,
    password: &str,
) -> Result<Option<Principal>, StoreError> {
    let users = table(catalog, "sys_user")?;
    let Some(user) = store::find_exact(conn, users, "user_name", user_name)? else {
        return Ok(None);
    };
    let stored = raw_password(conn, users, &user["sys_id"], "user_password")?;
    if !verify_password(&stored, password) {
        return Ok(None);
    }
    principal(conn, catalog, &user)
}

/// The active user `user_name` (exactly), with their roles: a web UI session's caller.
pub fn user_by_name(
    conn: &Connection,
    catalog: &Catalog,
    user_name: &str,
) -> Result<Option<Principal>, StoreError> {
    let users = table(catalog, "sys_user")?;
    match store::find_exact(conn, users, "user_name", user_name)? {
        Some(user) => principal(conn, catalog, &user),
        None => Ok(None),
    }
}

/// When a refresh token expires (empty when it is unknown).
pub fn refresh_expiry(
    conn: &Connection,
    catalog: &Catalog,
    refresh: &str,
) -> Result<String, StoreError> {
    let creds = table(catalog, "oauth_credential")?;
    let hash = token_hash(refresh);
    let found = store::find_by(conn, creds, &[("token", &hash), ("type", "refresh_token")])?;
    Ok(found.map(|c| c["expires"].clone()).unwrap_or_default())
}

/// Password columns are not in [`Fields`] reads meant for output, so they are read here.
fn raw_password(
    conn: &Connection,
    table: &crate::catalog::Table,
    sys_id: &str,
    column: &str,
) -> Result<String, StoreError> {
    Ok(store::get(conn, table, sys_id)?
        .and_then(|f| f.get(column).cloned())
        .unwrap_or_default())
}

/// Bearer authentication: an unexpired access token.
pub fn bearer(
    conn: &Connection,
    catalog: &Catalog,
    token: &str,
) -> Result<Option<Principal>, StoreError> {
    let creds = table(catalog, "oauth_credential")?;
    let hash = token_hash(token);
    let Some(cred) = store::find_by(conn, creds, &[("token", &hash), ("type", "access_token")])?
    else {
        return Ok(None);
    };
    if cred.get("expires").is_none_or(|e| *e <= now_string()) {
        return Ok(None);
    }
    let users = table(catalog, "sys_user")?;
    match store::get(conn, users, &cred["user"])? {
        Some(u) => principal(conn, catalog, &u),
        None => Ok(None),
    }
}

pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

/// The OAuth client, when id and secret match an active Application Registry record.
fn client(
    conn: &Connection,
    catalog: &Catalog,
    client_id: &str,
    client_secret: &str,
) -> Result<Option<Fields>, StoreError> {
    let entities = table(catalog, "oauth_entity")?;
    let Some(entity) = store::find_exact(conn, entities, "client_id", client_id)? else {
        return Ok(None);
    };
    let ok = entity.get("active").map(String::as_str) == Some("true")
        && verify_password(
            &raw_password(conn, entities, &entity["sys_id"], "client_secret")?,
            client_secret,
        );
    Ok(ok.then_some(entity))
}

fn lifespan(entity: &Fields, column: &str, default: i64) -> i64 {
    entity
        .get(column)
        .and_then(|v| v.parse().ok())
        .filter(|v: &i64| *v > 0)
        .unwrap_or(default)
}

fn store_token(
    conn: &Connection,
    catalog: &Catalog,
    token: &str,
    kind: &str,
    user: &str,
    entity: &str,
    seconds: i64,
) -> Result<(), StoreError> {
    let creds = table(catalog, "oauth_credential")?;
    let fields: Fields = [
        ("token", token_hash(token)),
        ("type", kind.to_owned()),
        ("user", user.to_owned()),
        ("oauth_entity", entity.to_owned()),
        ("scope", "useraccount".to_owned()),
        ("expires", after_seconds(seconds)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    store::insert(conn, creds, &fields, "system")?;
    Ok(())
}

/// `grant_type=password`: an access token and a refresh token for the user.
pub fn password_grant(
    conn: &Connection,
    catalog: &Catalog,
    client_id: &str,
    client_secret: &str,
    user_name: &str,
    password: &str,
) -> Result<Option<Tokens>, StoreError> {
    let Some(entity) = client(conn, catalog, client_id, client_secret)? else {
        return Ok(None);
    };
    let Some(user) = basic(conn, catalog, user_name, password)? else {
        return Ok(None);
    };
    let access_life = lifespan(&entity, "access_token_lifespan", 1800);
    let refresh_life = lifespan(&entity, "refresh_token_lifespan", 8_640_000);
    let (access, refresh) = (random_token(), random_token());
    let tx = conn.unchecked_transaction()?;
    store_token(
        &tx,
        catalog,
        &access,
        "access_token",
        &user.sys_id,
        &entity["sys_id"],
        access_life,
    )?;
    store_token(
        &tx,
        catalog,
        &refresh,
        "refresh_token",
        &user.sys_id,
        &entity["sys_id"],
        refresh_life,
    )?;
    tx.commit()?;
    Ok(Some(Tokens {
        access_token: access,
        refresh_token: Some(refresh),
        expires_in: access_life - 1,
    }))
}

/// `grant_type=refresh_token`: a new access token for the refresh token's user.
pub fn refresh_grant(
    conn: &Connection,
    catalog: &Catalog,
    client_id: &str,
    client_secret: &str,
    refresh_token: &str,
) -> Result<Option<Tokens>, StoreError> {
    let Some(entity) = client(conn, catalog, client_id, client_secret)? else {
        return Ok(None);
    };
    let creds = table(catalog, "oauth_credential")?;
    let hash = token_hash(refresh_token);
    let Some(cred) = store::find_by(conn, creds, &[("token", &hash), ("type", "refresh_token")])?
    else {
        return Ok(None);
    };
    if cred.get("oauth_entity") != entity.get("sys_id")
        || cred.get("expires").is_none_or(|e| *e <= now_string())
    {
        return Ok(None);
    }
    let users = table(catalog, "sys_user")?;
    let Some(user) = store::get(conn, users, &cred["user"])? else {
        return Ok(None);
    };
    let Some(user) = principal(conn, catalog, &user)? else {
        return Ok(None);
    };
    let access_life = lifespan(&entity, "access_token_lifespan", 1800);
    let access = random_token();
    store_token(
        conn,
        catalog,
        &access,
        "access_token",
        &user.sys_id,
        &entity["sys_id"],
        access_life,
    )?;
    Ok(Some(Tokens {
        access_token: access,
        refresh_token: None,
        expires_in: access_life - 1,
    }))
}

/// The system property that enables inbound `client_credentials` (default false).
pub const CLIENT_CREDENTIALS_PROPERTY: &str =
    "glide.oauth.inbound.client.credential.grant_type.enabled";

fn property_is_true(conn: &Connection, catalog: &Catalog, name: &str) -> Result<bool, StoreError> {
    let props = table(catalog, "sys_properties")?;
    Ok(store::find_exact(conn, props, "name", name)?
        .is_some_and(|p| p.get("value").is_some_and(|v| v.trim() == "true")))
}

/// `grant_type=client_credentials`: an access token for the client's OAuth Application
/// User, when the instance enables the grant (no refresh token, RFC 6749 §4.4.3).
pub fn client_credentials_grant(
    conn: &Connection,
    catalog: &Catalog,
    client_id: &str,
    client_secret: &str,
) -> Result<Option<Tokens>, StoreError> {
    if !property_is_true(conn, catalog, CLIENT_CREDENTIALS_PROPERTY)? {
        return Ok(None);
    }
    let Some(entity) = client(conn, catalog, client_id, client_secret)? else {
        return Ok(None);
    };
    let user_id = entity
        .get("oauth_application_user")
        .cloned()
        .unwrap_or_default();
    let users = table(catalog, "sys_user")?;
    let Some(user) = store::get(conn, users, &user_id)? else {
        return Ok(None);
    };
    let Some(user) = principal(conn, catalog, &user)? else {
        return Ok(None);
    };
    let access_life = lifespan(&entity, "access_token_lifespan", 1800);
    let access = random_token();
    store_token(
        conn,
        catalog,
        &access,
        "access_token",
        &user.sys_id,
        &entity["sys_id"],
        access_life,
    )?;
    Ok(Some(Tokens {
        access_token: access,
        refresh_token: None,
        expires_in: access_life - 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_are_salted() {
        let a = hash_password("secret");
        let b = hash_password("secret");
        assert_ne!(a, b);
        assert!(verify_password(&a, "secret"));
        assert!(!verify_password(&a, "Secret"));
        assert!(!verify_password("plain", "plain"));
        assert!(a.starts_with("$argon2id$"), "{a}");
    }

    #[test]
    fn tokens_are_long_alphanumerics() {
        let t = random_token();
        assert_eq!(t.len(), 86);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
