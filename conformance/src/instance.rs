//! What the runner does on an instance, over ServiceNow's documented APIs only: the OAuth
//! password grant and the Table API. (No emulator back doors, so a real instance works too.)

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::target::Instance;

/// A Table API client authenticated as the instance's admin (Basic auth).
pub struct TableApi {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

/// One record, with every value as the Table API's string (references as their sys_id).
pub type Record = BTreeMap<String, String>;

/// Result of a count: a table the instance does not know is not an error for reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Count {
    Rows(u64),
    InvalidTable,
}

impl TableApi {
    pub fn new(instance: &Instance) -> anyhow::Result<TableApi> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(TableApi {
            http,
            url: instance.url.clone(),
            user: instance.credentials.admin_user.clone(),
            password: instance.credentials.admin_password.clone(),
        })
    }

    fn get(&self, table: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}/api/now/v2/table/{table}", self.url))
            .basic_auth(&self.user, Some(&self.password))
            .header("Accept", "application/json")
    }

    /// Number of rows matching an encoded query, from `X-Total-Count`.
    pub async fn count(&self, table: &str, query: &str) -> anyhow::Result<Count> {
        let response = self
            .get(table)
            .query(&[
                ("sysparm_query", query),
                ("sysparm_limit", "1"),
                ("sysparm_fields", "sys_id"),
            ])
            .send()
            .await
            .with_context(|| format!("cannot query {table}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::BAD_REQUEST {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if message.starts_with("Invalid table") {
                return Ok(Count::InvalidTable);
            }
            anyhow::bail!("query of {table} refused: {body}");
        }
        anyhow::ensure!(status.is_success(), "query of {table} answered {status}");
        let total = response
            .headers()
            .get("X-Total-Count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("query of {table} has no X-Total-Count header"))?;
        Ok(Count::Rows(total))
    }

    /// Records matching an encoded query (values, or display values when `display` is set).
    pub async fn records(
        &self,
        table: &str,
        query: &str,
        fields: &[&str],
        display: bool,
        limit: u32,
    ) -> anyhow::Result<Vec<Record>> {
        let fields = fields.join(",");
        let limit = limit.to_string();
        let mut params = vec![
            ("sysparm_query", query),
            ("sysparm_limit", limit.as_str()),
            ("sysparm_exclude_reference_link", "true"),
            (
                "sysparm_display_value",
                if display { "true" } else { "false" },
            ),
        ];
        if !fields.is_empty() {
            params.push(("sysparm_fields", fields.as_str()));
        }
        let response = self
            .get(table)
            .query(&params)
            .send()
            .await
            .with_context(|| format!("cannot read {table}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{table}: body is not JSON"))?;
        anyhow::ensure!(
            status.is_success(),
            "read of {table} answered {status}: {body}"
        );
        let rows = body["result"]
            .as_array()
            .with_context(|| format!("{table}: no result array"))?;
        Ok(rows.iter().map(flatten).collect())
    }

    /// Inserts one record; returns its sys_id.
    pub async fn insert(
        &self,
        table: &str,
        values: &BTreeMap<String, String>,
    ) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/api/now/table/{table}", self.url))
            .basic_auth(&self.user, Some(&self.password))
            .header("Accept", "application/json")
            .json(values)
            .send()
            .await
            .with_context(|| format!("cannot insert into {table}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.as_u16() == 201,
            "insert into {table} answered {status}: {body}"
        );
        body["result"]["sys_id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("insert into {table}: no sys_id in {body}"))
    }
}

impl TableApi {
    /// Changes every record `query` selects; fails when none does.
    pub async fn update_where(
        &self,
        table: &str,
        query: &str,
        values: &BTreeMap<String, String>,
    ) -> anyhow::Result<usize> {
        let targets = self.records(table, query, &["sys_id"], false, 1000).await?;
        anyhow::ensure!(!targets.is_empty(), "{table} [{query}] selects no record");
        for record in &targets {
            let sys_id = record.get("sys_id").map(String::as_str).unwrap_or("");
            let response = self
                .http
                .patch(format!("{}/api/now/table/{table}/{sys_id}", self.url))
                .basic_auth(&self.user, Some(&self.password))
                .header("Accept", "application/json")
                .json(values)
                .send()
                .await
                .with_context(|| format!("cannot update {table}/{sys_id}"))?;
            let status = response.status();
            anyhow::ensure!(
                status.is_success(),
                "update of {table}/{sys_id} answered {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(targets.len())
    }
}

/// Reference fields come back as `{"value": …}` or `{"display_value": …}`; flatten them.
fn flatten(row: &Value) -> Record {
    let mut record = Record::new();
    if let Some(map) = row.as_object() {
        for (key, value) in map {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("display_value")
                    .or_else(|| o.get("value"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            record.insert(key.clone(), text);
        }
    }
    record
}

/// The integration user's refresh token, by the OAuth password grant — what an administrator
/// does on the app's "Generate Token" page.
pub async fn refresh_token(instance: &Instance) -> anyhow::Result<String> {
    let c = &instance.credentials;
    let response = reqwest::Client::new()
        .post(format!("{}/oauth_token.do", instance.url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", c.oauth_client_id.as_str()),
            ("client_secret", c.oauth_client_secret.as_str()),
            ("username", c.integration_user.as_str()),
            ("password", c.integration_password.as_str()),
        ])
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("cannot reach /oauth_token.do")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "password grant for {} answered {status}: {body}",
        c.integration_user
    );
    body["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .context("password grant returned no refresh_token")
}

/// An access token of the integration user (password grant), for requests the runner sends
/// itself (tests replaying recorded segments).
pub async fn access_token(instance: &Instance) -> anyhow::Result<String> {
    let c = &instance.credentials;
    let body: Value = reqwest::Client::new()
        .post(format!("{}/oauth_token.do", instance.url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", c.oauth_client_id.as_str()),
            ("client_secret", c.oauth_client_secret.as_str()),
            ("username", c.integration_user.as_str()),
            ("password", c.integration_password.as_str()),
        ])
        .timeout(Duration::from_secs(30))
        .send()
        .await?
        .json()
        .await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("password grant returned no access_token")
}
