//! State survives a restart: a stored transaction left unprocessed is completed by the next
//! instance; tokens and records persist.

use reqwest::StatusCode;
use serde_json::json;
use snow_emulator::Config;

use crate::check::{Emulator, fixture_json};

#[tokio::test]
async fn queued_transaction_completes_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        db: dir
            .path()
            .join("instance.sqlite")
            .to_string_lossy()
            .into_owned(),
        ..Default::default()
    };
    let emu = Emulator::start_with(config.clone()).await;
    emu.pause_worker(true).await;
    let refresh = emu.refresh_token().await;
    let token = emu.token().await;
    let r = emu
        .fnms(&token, &fixture_json("requests/inventory_export.json"))
        .await;
    assert_eq!(r["returnCode"], 0);
    assert_eq!(r["state"], "new");
    emu.stop().await;

    // A new instance on the same database: the pause is not persisted, the worker resumes.
    let emu = Emulator::start_with(config.clone()).await;
    let r = emu
        .client
        .get(emu.url("/api/now/table/x_fls_flexera_fnms_import_run?sysparm_limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the access token survives a restart"
    );
    let status = emu
        .wait_run(&token, "11111111-1111-4111-8111-111111111111")
        .await;
    assert_eq!(status["state"], "succeeded");
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 4);
    // The retransmission after the restart is still a duplicate.
    let again = emu
        .fnms(&token, &fixture_json("requests/inventory_export.json"))
        .await;
    assert_eq!(again["duplicate"], json!(true));
    emu.stop().await;

    // Numbers continue; the refresh token still works.
    let emu = Emulator::start_with(config).await;
    let r = emu
        .oauth(&[
            ("grant_type", "refresh_token"),
            ("client_id", crate::check::CLIENT_ID),
            ("client_secret", crate::check::CLIENT_SECRET),
            ("refresh_token", &refresh),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 4);
    assert_eq!(
        emu.records("sys_user", "").await.len(),
        2,
        "seeding twice adds nothing"
    );
    emu.stop().await;
}
