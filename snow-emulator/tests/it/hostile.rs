//! Malformed, hostile and oversized input: a clear error, nothing changed, server healthy.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::check::{Emulator, inventory_xml, segment, urlencode};

async fn assert_nothing_stored(emu: &Emulator) {
    for table in [
        "x_fls_flexera_fnms_import_transaction",
        "x_fls_flexera_fnms_import_run",
        "x_fls_flexera_fnms_inventory_import",
        "cmdb_ci",
    ] {
        assert!(emu.records(table, "").await.is_empty(), "{table} changed");
    }
    let health = emu.get("/_emulator/health").await;
    assert_eq!(health.body["status"], "ok");
}

#[tokio::test]
async fn hostile_payloads_get_code_12_and_store_nothing() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let billion_laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE Inventories [\n <!ENTITY lol \"lol\">\n <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n<Inventories><Inventory><ComputerID>&lol2;</ComputerID></Inventory></Inventories>";
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><Inventories><Inventory><ComputerID>&xxe;</ComputerID></Inventory></Inventories>";
    let good_one = inventory_xml(&[vec![("ComputerID", "1"), ("ComputerName", "A")]]);
    let cases = [
        (billion_laughs.to_owned(), 1),
        (xxe.to_owned(), 1),
        (
            "<Inventories><Inventory><ComputerID>1</Inventory></Inventories>".to_owned(),
            1,
        ),
        ("<Inventories><Inventory>".to_owned(), 1),
        ("<Contracts/>".to_owned(), 0),
        (
            "<Inventories><Inventory><ComputerID>&#xD800;</ComputerID></Inventory></Inventories>"
                .to_owned(),
            1,
        ),
        (good_one.clone(), 2),
        (String::new(), 0),
    ];
    for (data, count) in cases {
        let r = emu
            .fnms(
                &token,
                &segment("t1", "inventory_export", "run", 1, true, &data, count),
            )
            .await;
        assert_eq!(r["returnCode"], 12, "{data:?} → {r}");
        assert_eq!(r["status"], "failure");
        assert_eq!(r["transactionId"], "t1");
    }
    // Invalid UTF-8 bytes inside the data.
    let text = serde_json::to_string(&segment(
        "t1",
        "inventory_export",
        "run",
        1,
        true,
        "<Inventories><Inventory><ComputerName>@@BAD@@</ComputerName></Inventory></Inventories>",
        1,
    ))
    .expect("json");
    let at = text.find("@@BAD@@").expect("marker");
    let mut raw = text.into_bytes();
    raw.splice(at..at + 7, [0xC3, 0x28]);
    let r = emu
        .post_raw("/api/x_fls_flexera_fnms/integration/fnmstosn", &token, raw)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["result"]["returnCode"], 12, "{}", r.body);
    assert_nothing_stored(&emu).await;
    emu.stop().await;
}

#[tokio::test]
async fn unreadable_and_oversized_bodies_get_400() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    for body in [
        b"not json".to_vec(),
        b"{\"transactionId\":".to_vec(),
        vec![0xff, 0xfe],
    ] {
        let r = emu
            .post_raw("/api/x_fls_flexera_fnms/integration/fnmstosn", &token, body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["status"], "failure");
        assert_eq!(
            r.body["error"]["message"],
            "Exception while reading request"
        );
    }
    let big = segment(
        "t1",
        "inventory_export",
        "run",
        1,
        true,
        &"x".repeat(11 * 1024 * 1024),
        0,
    );
    let r = emu
        .post_raw("/fnmp.do", &token, serde_json::to_vec(&big).expect("json"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["status"], "failure");
    assert_nothing_stored(&emu).await;
    emu.stop().await;
}

#[tokio::test]
async fn injection_attempts_are_harmless() {
    let emu = Emulator::start().await;
    let users_before = emu.records("sys_user", "").await.len();
    for query in [
        "user_name=admin' OR '1'='1",
        "user_name=admin\"; DROP TABLE sys_user; --",
        "user_nameINa');DELETE FROM sys_user;--",
        "user_name=x^ORDERBYuser_name; DROP TABLE sys_user",
        "sys_id!=1) OR 1=1 --",
        "user_nameLIKE%'--",
        "\"sys_user\".\"user_name\"=admin",
    ] {
        let r = emu
            .get(&format!(
                "/api/now/table/sys_user?sysparm_query={}",
                urlencode(query)
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    }
    let r = emu
        .get(&format!(
            "/api/now/table/sys_user?sysparm_query={}",
            urlencode("user_name=admin' OR '1'='1")
        ))
        .await;
    assert_eq!(r.body["result"], json!([]), "a quote is just a character");
    for table in [
        "sys_user;DROP TABLE sys_user",
        "sys_user\"",
        "sqlite_master",
        "_emulator_numbers",
        "../etc",
    ] {
        let r = emu
            .get(&format!("/api/now/table/{}", urlencode(table)))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{table}");
        assert_eq!(r.body["error"]["message"], format!("Invalid table {table}"));
    }
    let r = emu
        .get("/api/now/table/sys_user?sysparm_fields=user_name,(select%201)")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(emu.records("sys_user", "").await.len(), users_before);
    let health = emu.get("/_emulator/health").await;
    assert_eq!(health.body["status"], "ok");
    emu.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_the_envelope() {
    let emu = Emulator::start().await;
    let r = emu.get("/api/now/nothing/here").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["error"]["message"],
        "Requested URI does not represent any resource"
    );
    let r = emu.get("/api/now/v9/table/sys_user").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = emu
        .client
        .get(emu.url("/fnmp.do"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "failure");
    emu.stop().await;
}

#[tokio::test]
async fn controls_are_open_on_loopback() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let r = emu
        .fnms(
            &token,
            &segment(
                "t1",
                "inventory_export",
                "run",
                1,
                true,
                "<Inventories/>",
                0,
            ),
        )
        .await;
    assert_eq!(r["returnCode"], 0);
    // No credentials needed from 127.0.0.1 (the conformance suite resets this way).
    let r = emu
        .client
        .post(emu.url("/_emulator/reset"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        emu.records("x_fls_flexera_fnms_import_run", "")
            .await
            .is_empty()
    );
    let r = emu
        .client
        .post(emu.url("/_emulator/worker"))
        .json(&json!({"paused": "yes"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = emu
        .client
        .get(emu.url("/_emulator/catalog"))
        .send()
        .await
        .expect("send");
    let catalog: Value = r.json().await.expect("json");
    let maps = catalog["transform_maps"].as_array().expect("maps");
    assert_eq!(maps.len(), 14);
    assert!(
        catalog["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|t| t["name"] == "cmdb_ci_aix_server" && t["physical"] == "cmdb_ci")
    );
    emu.stop().await;
}

/// Random encoded queries, field lists and request bodies: every answer is a well-formed
/// ServiceNow response and the server stays healthy.
#[tokio::test]
async fn random_input_never_breaks_the_server() {
    use rand::{Rng, SeedableRng};
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261128);
    let alphabet: Vec<char> =
        "abcdemnorstuy_.=^!<>%*@,;'\"()- ORDERBYDESCNQINLIKESTARTSWITHISEMPTY0123456789\u{e9}\u{0}"
            .chars()
            .collect();
    let random = |rng: &mut rand::rngs::StdRng, len: usize| -> String {
        (0..rng.random_range(0..len))
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect()
    };
    for _ in 0..150 {
        let q = random(&mut rng, 60);
        let f = random(&mut rng, 20);
        let r = emu
            .get(&format!(
                "/api/now/table/cmdb_ci_computer?sysparm_query={}&sysparm_fields={}&sysparm_display_value=all",
                urlencode(&q),
                urlencode(&f)
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q:?} {f:?}: {}", r.body);
    }
    let golden = crate::check::fixture_json("requests/inventory_export.json");
    let keys = [
        "transactionId",
        "transactionType",
        "importRunId",
        "segmentNumber",
        "lastSegment",
        "recordCount",
        "data",
    ];
    let values = [
        json!(null),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!(true),
        json!(i64::MAX),
        json!("<Inventories/>"),
    ];
    for i in 0..150 {
        let mut body = golden.clone();
        body["transactionId"] = json!(format!("fuzz-{i}"));
        body["importRunId"] = json!(format!("fuzz-run-{i}"));
        for _ in 0..rng.random_range(1..4) {
            let key = keys[rng.random_range(0..keys.len())];
            body[key] = values[rng.random_range(0..values.len())].clone();
        }
        let r = emu
            .post_raw("/fnmp.do", &token, serde_json::to_vec(&body).expect("json"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.body);
        let code = r.body["result"]["returnCode"].as_i64().expect("returnCode");
        assert!(
            [0, 10, 11, 12, 20, 21].contains(&code),
            "{body}: {}",
            r.body
        );
    }
    let health = emu.get("/_emulator/health").await;
    assert_eq!(health.body["status"], "ok");
    emu.stop().await;
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusCase {
    description: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    auth: String,
    body: Option<String>,
    segment_data: Option<String>,
    deep_nesting: Option<usize>,
    header: Option<CorpusHeader>,
    expect: CorpusExpect,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusHeader {
    name: String,
    value: String,
    repeat: usize,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusExpect {
    status: u16,
    return_code: Option<i64>,
    message: Option<String>,
}

fn get() -> String {
    "GET".to_owned()
}

/// Row counts of every table a hostile request could touch.
async fn table_counts(emu: &Emulator) -> Vec<(&'static str, usize)> {
    let mut out = Vec::new();
    for table in [
        "sys_user",
        "oauth_credential",
        "sys_properties",
        "x_fls_flexera_fnms_import_run",
        "x_fls_flexera_fnms_import_transaction",
        "x_fls_flexera_fnms_inventory_import",
        "cmdb_ci",
        "syslog",
    ] {
        out.push((table, emu.records(table, "").await.len()));
    }
    out
}

impl CorpusCase {
    fn body(&self) -> Option<String> {
        let data = match (&self.segment_data, self.deep_nesting) {
            (Some(d), _) => d.clone(),
            (None, Some(depth)) => format!(
                "<Inventories><Inventory><ComputerID>1</ComputerID>{}{}</Inventory></Inventories>",
                "<a>".repeat(depth),
                "</a>".repeat(depth)
            ),
            (None, None) => return self.body.clone(),
        };
        let tid = "dddddddd-0000-4000-8000-000000000001";
        Some(segment(tid, "inventory_export", "hostile-run", 1, true, &data, 1).to_string())
    }

    async fn send(&self, emu: &Emulator, token: &str) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).expect("method");
        let mut request = emu.client.request(method, emu.url(&self.path));
        request = match self.auth.as_str() {
            "integration" => request.bearer_auth(token),
            "admin" => request.basic_auth("admin", Some("admin")),
            "none" => request,
            verbatim => request.header("Authorization", verbatim),
        };
        if let Some(h) = &self.header {
            request = request.header(h.name.as_str(), h.value.repeat(h.repeat));
        }
        if let Some(body) = self.body() {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let r = request.send().await.expect("send");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[tokio::test]
async fn every_corpus_case_is_refused_and_changes_nothing() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hostile");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 22, "{} corpus files", files.len());
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let before = table_counts(&emu).await;
    for file in &files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let text = std::fs::read_to_string(file).expect("read");
        let case: CorpusCase = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (status, body) = case.send(&emu, &token).await;
        let what = format!("{name} ({}): {status} {body}", case.description);
        assert_eq!(status.as_u16(), case.expect.status, "{what}");
        if let Some(code) = case.expect.return_code {
            assert_eq!(body["result"]["returnCode"], code, "{what}");
        }
        if let Some(m) = &case.expect.message {
            let said = [&body["error"]["message"], &body["result"]["message"]]
                .iter()
                .filter_map(|v| v.as_str())
                .any(|s| s.contains(m.as_str()));
            assert!(said, "{what}: message lacks {m:?}");
        }
        assert_eq!(table_counts(&emu).await, before, "{what}: a table changed");
        let health = emu.get("/_emulator/health").await;
        assert_eq!(
            health.body["status"], "ok",
            "{what}: the server stopped serving"
        );
    }
    emu.stop().await;
}
