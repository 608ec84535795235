//! HTTPS with `--tls-cert` / `--tls-key` (ServiceNow instances are https-only).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn serves_https_with_a_pem_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, key.cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.signing_key.serialize_pem()).expect("write key");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (c, k) = (cert_path.clone(), key_path.clone());
    let server = tokio::spawn(async move {
        snow_emulator::serve_tls(
            listener,
            snow_emulator::Config::default(),
            &c,
            &k,
            async move {
                let _ = stopped.await;
            },
        )
        .await
    });
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(key.cert.pem().as_bytes()).expect("pem"),
        )
        .build()
        .expect("client");
    let url = format!("https://localhost:{port}");
    let mut health = None;
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/_emulator/health")).send().await {
            health = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let health = health.expect("https server answers");
    assert_eq!(health.status(), StatusCode::OK);
    // Links use the https scheme the client called.
    let r = client
        .get(format!("{url}/api/now/table/scheduled_import_set"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    let link = body["result"][0]["data_source"]["link"]
        .as_str()
        .expect("link");
    assert!(
        link.starts_with(&format!("{url}/api/now/table/sys_data_source/")),
        "{link}"
    );
    // Plain HTTP on the TLS port is not served.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/_emulator/health"))
            .await
            .map(|r| r.status() != StatusCode::OK)
            .unwrap_or(true)
    );
    let _ = stop.send(());
    server.await.expect("task").expect("server");
}
