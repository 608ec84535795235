//! The emulator's own controls (`/_emulator/…`), which a real instance does not have:
//! fault injection and the instance clock. Scenarios that use them are skipped against an
//! instance not known to be an emulator.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// `POST /_emulator/faults` with the scenario's `[[fault]]` tables as they are.
pub async fn install_faults(
    url: &str,
    seed: Option<u64>,
    faults: &[toml::Table],
) -> anyhow::Result<()> {
    let faults: Vec<Value> = faults
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .context("a [[fault]] table is not expressible as JSON")?;
    let mut body = json!({ "faults": faults });
    if let Some(seed) = seed {
        body["seed"] = json!(seed);
    }
    post(url, "faults", &body, "fault injection").await
}

/// `POST /_emulator/clock` with `{"set": …}` or `{"advance_seconds": …}`.
pub async fn set_clock(url: &str, set: &str) -> anyhow::Result<()> {
    post(url, "clock", &json!({ "set": set }), "the instance clock").await
}

pub async fn advance_clock(url: &str, seconds: i64) -> anyhow::Result<()> {
    post(
        url,
        "clock",
        &json!({ "advance_seconds": seconds }),
        "the instance clock",
    )
    .await
}

async fn post(url: &str, control: &str, body: &Value, what: &str) -> anyhow::Result<()> {
    let endpoint = format!("{url}/_emulator/{control}");
    let response = client()?
        .post(&endpoint)
        .json(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::METHOD_NOT_ALLOWED
    {
        anyhow::bail!(
            "this emulator has no {what} control (POST /_emulator/{control} answered {status}); \
             the scenario needs an emulator build that has it"
        );
    }
    let text = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "POST /_emulator/{control} answered {status}: {text}"
    );
    Ok(())
}
