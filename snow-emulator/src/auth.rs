//! Credentials: users' passwords (sys_user.user_password), the OAuth client
//! (oauth_entity) and issued tokens (oauth_credential). Secrets are stored hashed only:
//! passwords salted SHA-256, tokens plain SHA-256 (they are long random strings, and the hash
//! must be searchable).

use rand::Rng;
use rand::distr::Alphanumeric;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::store::{self, Fields, StoreError};

/// Length of issued tokens; ServiceNow's refresh tokens are about 86 characters.
const TOKEN_LEN: usize = 86;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hash_password(password: &str) -> String {
    let salt = hex(&rand::random::<[u8; 16]>());
    let digest = Sha256::digest(format!("{salt}{password}").as_bytes());
    format!("sha256${salt}${}", hex(&digest))
}

pub fn verify_password(stored: &str, password: &str) -> bool {
    let mut parts = stored.splitn(3, '$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sha256"), Some(salt), Some(hash)) => {
            hex(&Sha256::digest(format!("{salt}{password}").as_bytes())) == hash
        }
        _ => false,
    }
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
    pub admin: bool,
}

fn principal(user: &Fields) -> Option<Principal> {
    if user.get("active").map(String::as_str) != Some("true") {
        return None;
    }
    Some(Principal {
        sys_id: user.get("sys_id")?.clone(),
        user_name: user.get("user_name")?.clone(),
        admin: user
            .get("roles")
            .is_some_and(|r| r.split(',').any(|r| r.trim() == "admin")),
    })
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
    Ok(principal(&user))
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
    if cred
        .get("expires")
        .is_none_or(|e| *e <= crate::clock::now_string())
    {
        return Ok(None);
    }
    let users = table(catalog, "sys_user")?;
    Ok(store::get(conn, users, &cred["user"])?.and_then(|u| principal(&u)))
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
        ("expires", crate::clock::after_seconds(seconds)),
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
        || cred
            .get("expires")
            .is_none_or(|e| *e <= crate::clock::now_string())
    {
        return Ok(None);
    }
    let users = table(catalog, "sys_user")?;
    let Some(user) = store::get(conn, users, &cred["user"])?.and_then(|u| principal(&u)) else {
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
    }

    #[test]
    fn tokens_are_long_alphanumerics() {
        let t = random_token();
        assert_eq!(t.len(), 86);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
