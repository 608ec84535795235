//! The Table API against ServiceNow's documented behaviour ([SN-TABLE-API] in docs/sources.md).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::check::{Emulator, fixture_json, urlencode};

/// An emulator holding the golden inventory.
async fn with_inventory() -> (Emulator, String) {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    let r = emu
        .fnms(&token, &fixture_json("requests/inventory_export.json"))
        .await;
    assert_eq!(r["returnCode"], 0);
    emu.wait_run(&token, "11111111-1111-4111-8111-111111111111")
        .await;
    (emu, token)
}

async fn names(emu: &Emulator, table: &str, query: &str) -> Vec<String> {
    let r = emu
        .get(&format!(
            "/api/now/table/{table}?sysparm_fields=name&sysparm_query={}",
            urlencode(query)
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    r.body["result"]
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn readiness_queries_of_the_wire_protocol() {
    let emu = Emulator::start().await;
    let token = emu.token().await;
    for (path, count) in [
        (
            "/api/now/table/scheduled_import_set?sysparm_query=name=FNMS Import Schedule^active=true&sysparm_limit=1",
            "1",
        ),
        (
            "/api/now/table/sys_data_source?sysparm_query=name=FNMS Data Source&sysparm_limit=1",
            "1",
        ),
        (
            "/api/now/table/x_fls_flexera_fnms_import_run?sysparm_query=state!=succeeded^state!=failed&sysparm_limit=1",
            "0",
        ),
        (
            "/api/now/table/x_fls_flexera_fnms_import_transaction?sysparm_query=state!=succeeded^state!=failed&sysparm_limit=1",
            "0",
        ),
    ] {
        let r = emu
            .client
            .get(emu.url(&path.replace(' ', "%20")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["x-total-count"], count, "{path}");
    }
    emu.stop().await;
}

#[tokio::test]
async fn records_are_strings_and_references_links() {
    let (emu, _) = with_inventory().await;
    let r = emu
        .get("/api/now/table/cmdb_ci_computer?sysparm_query=name=NYC-LT-0001")
        .await;
    let pc = &r.body["result"][0];
    assert_eq!(pc["ram"], "16384");
    assert_eq!(pc["virtual"], "false");
    assert_eq!(pc["sys_mod_count"], "0");
    assert_eq!(pc["sys_class_name"], "cmdb_ci_computer");
    let sys_id = pc["sys_id"].as_str().expect("sys_id");
    assert!(
        sys_id.len() == 32
            && sys_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let created = pc["sys_created_on"].as_str().expect("date");
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created}"
    );
    let model = &pc["model_id"];
    let model_id = model["value"].as_str().expect("reference value");
    assert_eq!(
        model["link"],
        format!("{}/api/now/table/cmdb_model/{model_id}", emu.base)
    );
    // Empty reference is "".
    let r = emu
        .get("/api/now/table/sys_user?sysparm_query=user_name=admin")
        .await;
    assert_eq!(r.body["result"][0]["email"], "");
    let r = emu.get("/api/now/table/scheduled_import_set").await;
    assert!(r.body["result"][0]["data_source"].is_object());

    // Display values.
    let r = emu
        .get("/api/now/table/cmdb_ci_computer?sysparm_query=name=NYC-LT-0001&sysparm_display_value=true&sysparm_fields=model_id,sys_class_name,install_status")
        .await;
    let pc = &r.body["result"][0];
    assert_eq!(
        pc,
        &json!({
            "model_id": {"display_value": "Latitude 7440", "link": model["link"]},
            "sys_class_name": "Computer",
            "install_status": "Installed",
        })
    );
    let r = emu
        .get("/api/now/table/cmdb_ci_computer?sysparm_query=name=NYC-LT-0001&sysparm_display_value=all&sysparm_exclude_reference_link=true&sysparm_fields=model_id,ram")
        .await;
    assert_eq!(
        r.body["result"][0],
        json!({
            "model_id": {"display_value": "Latitude 7440", "value": model_id},
            "ram": {"display_value": "16384", "value": "16384"},
        })
    );
    let r = emu
        .get("/api/now/table/cmdb_ci_computer?sysparm_query=name=NYC-LT-0001&sysparm_exclude_reference_link=true&sysparm_fields=model_id")
        .await;
    assert_eq!(r.body["result"][0], json!({"model_id": model_id}));

    // One record by sys_id, through every API version.
    for prefix in ["/api/now/table", "/api/now/v1/table", "/api/now/v2/table"] {
        let r = emu
            .get(&format!("{prefix}/cmdb_ci_computer/{sys_id}"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["result"]["name"], "NYC-LT-0001");
    }
    let r = emu
        .get("/api/now/table/cmdb_ci_computer/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body["error"],
        json!({"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"})
    );
    // A VM instance is not a computer.
    let vm = &emu.records("cmdb_ci_vm_instance", "").await[0];
    let r = emu
        .get(&format!(
            "/api/now/table/cmdb_ci_computer/{}",
            vm["sys_id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    emu.stop().await;
}

#[tokio::test]
async fn class_hierarchy_queries() {
    let (emu, _) = with_inventory().await;
    assert_eq!(emu.records("cmdb_ci", "").await.len(), 5);
    assert_eq!(emu.records("cmdb_ci_hardware", "").await.len(), 4);
    assert_eq!(emu.records("cmdb_ci_computer", "").await.len(), 4);
    // Text sorts without regard to case.
    assert_eq!(
        names(&emu, "cmdb_ci_server", "ORDERBYname").await,
        ["LON-APP-07", "lon-db-02", "LON-ESX-01"]
    );
    assert_eq!(names(&emu, "cmdb_ci_esx_server", "").await, ["LON-ESX-01"]);
    assert!(emu.records("cmdb_ci_unix_server", "").await.is_empty());
    // A parent table shows the parent's columns only.
    let ci = &emu.records("cmdb_ci", "name=NYC-LT-0001").await[0];
    assert!(ci.get("ram").is_none());
    assert_eq!(ci["sys_class_name"], "cmdb_ci_computer");
    emu.stop().await;
}

#[tokio::test]
async fn encoded_query_operators() {
    let (emu, _) = with_inventory().await;
    let t = "cmdb_ci_computer";
    let cases: &[(&str, &[&str])] = &[
        (
            "nameSTARTSWITHlon^ORDERBYname",
            &["LON-APP-07", "lon-db-02", "LON-ESX-01"],
        ),
        ("nameENDSWITHX-01", &["LON-ESX-01"]),
        ("osLIKEwindows^ORDERBYname", &["LON-APP-07", "NYC-LT-0001"]),
        (
            "osNOT LIKEwindows^ORDERBYname",
            &["lon-db-02", "LON-ESX-01"],
        ),
        ("name=nyc-lt-0001", &["NYC-LT-0001"]),
        (
            "name!=NYC-LT-0001^ORDERBYDESCram",
            &["LON-ESX-01", "lon-db-02", "LON-APP-07"],
        ),
        (
            "nameINLON-ESX-01,lon-db-02^ORDERBYname",
            &["lon-db-02", "LON-ESX-01"],
        ),
        (
            "nameNOT INLON-ESX-01,lon-db-02^ORDERBYname",
            &["LON-APP-07", "NYC-LT-0001"],
        ),
        ("ram>=262144^ORDERBYram", &["lon-db-02", "LON-ESX-01"]),
        ("ram<16385", &["LON-APP-07", "NYC-LT-0001"]),
        (
            "ramBETWEEN8000@17000^ORDERBYname",
            &["LON-APP-07", "NYC-LT-0001"],
        ),
        ("virtual=true", &["LON-APP-07"]),
        (
            "name=NYC-LT-0001^ORname=lon-db-02^ORDERBYname",
            &["lon-db-02", "NYC-LT-0001"],
        ),
        (
            "name=NYC-LT-0001^NQram=8192^ORDERBYname",
            &["LON-APP-07", "NYC-LT-0001"],
        ),
        ("os_service_packISEMPTY^name=lon-db-02", &["lon-db-02"]),
        (
            "serial_numberISNOTEMPTY^nameSTARTSWITHNYC",
            &["NYC-LT-0001"],
        ),
        ("no_such_field=1^name=LON-ESX-01", &["LON-ESX-01"]),
        ("nameLIKE%", &[]),
        ("sys_class_name=cmdb_ci_linux_server", &["lon-db-02"]),
    ];
    for (query, expected) in cases {
        let mut got = names(&emu, t, query).await;
        if !query.contains("ORDERBY") {
            got.sort();
        }
        assert_eq!(&got, expected, "{query}");
    }
    // name=value pairs instead of sysparm_query.
    let r = emu
        .get("/api/now/table/cmdb_ci_computer?name=LON-ESX-01&sysparm_fields=name")
        .await;
    assert_eq!(r.body["result"], json!([{"name": "LON-ESX-01"}]));
    emu.stop().await;
}

#[tokio::test]
async fn paging_headers_and_versions() {
    let (emu, _) = with_inventory().await;
    let r = emu
        .get("/api/now/table/cmdb_ci?sysparm_limit=2&sysparm_offset=2&sysparm_query=ORDERBYname&sysparm_fields=name")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-total-count"], "5");
    assert_eq!(r.body["result"].as_array().map(Vec::len), Some(2));
    let link = r.headers["link"].to_str().expect("link");
    let base = format!(
        "{}/api/now/table/cmdb_ci?sysparm_query=ORDERBYname&sysparm_fields=name&sysparm_limit=2",
        emu.base
    );
    assert_eq!(
        link,
        format!(
            "<{base}&sysparm_offset=0>;rel=\"first\",<{base}&sysparm_offset=0>;rel=\"prev\",<{base}&sysparm_offset=4>;rel=\"next\",<{base}&sysparm_offset=4>;rel=\"last\""
        )
    );
    // Pages cover every record once.
    let mut all = Vec::new();
    for offset in [0, 2, 4] {
        let r = emu
            .get(&format!("/api/now/table/cmdb_ci?sysparm_query=ORDERBYname&sysparm_limit=2&sysparm_offset={offset}"))
            .await;
        for x in r.body["result"].as_array().expect("list") {
            all.push(x["sys_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5);
    // One page: no Link header.
    let r = emu.get("/api/now/table/cmdb_ci?sysparm_limit=10").await;
    assert!(r.headers.get("link").is_none());
    let r = emu
        .get("/api/now/table/cmdb_ci?sysparm_limit=1&sysparm_no_count=true")
        .await;
    assert!(r.headers.get("x-total-count").is_none());
    // Extreme values are no reason to fail.
    let r = emu
        .get("/api/now/table/cmdb_ci?sysparm_limit=9223372036854775807&sysparm_offset=9223372036854775807")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["result"], json!([]));
    let r = emu
        .get("/api/now/table/cmdb_ci?sysparm_limit=1&sysparm_offset=9223372036854775807")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = emu.get("/api/now/table/cmdb_ci?sysparm_offset=-9").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body["error"],
        json!({"message": "offset is -9", "detail": "Negative offset is not supported"})
    );
    // Empty results: v1 404, v2 and unversioned 200 [].
    let r = emu
        .get("/api/now/v1/table/cmdb_ci?sysparm_query=name=nothing")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["message"], "No Record found");
    for prefix in ["/api/now/v2/table", "/api/now/table"] {
        let r = emu
            .get(&format!("{prefix}/cmdb_ci?sysparm_query=name=nothing"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, json!({"result": []}));
        assert_eq!(r.headers["x-total-count"], "0");
    }
    let r = emu.get("/api/now/table/no_such_table").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        json!({"error": {"message": "Invalid table no_such_table", "detail": null}, "status": "failure"})
    );
    emu.stop().await;
}

#[tokio::test]
async fn insert_update_delete() {
    let emu = Emulator::start().await;
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/cmdb_ci_linux_server",
            &json!({"name": "new-box", "ram": 2048, "virtual": true, "unknown_field": "x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rec = &r.body["result"];
    let id = rec["sys_id"].as_str().expect("id").to_owned();
    assert_eq!(
        r.headers["location"],
        format!("{}/api/now/table/cmdb_ci_linux_server/{id}", emu.base)
    );
    assert_eq!(rec["ram"], "2048");
    assert_eq!(rec["virtual"], "true");
    assert_eq!(rec["sys_class_name"], "cmdb_ci_linux_server");
    assert_eq!(rec["sys_created_by"], "admin");
    assert_eq!(rec["install_status"], "1", "default applied");
    assert!(rec.get("unknown_field").is_none());
    assert_eq!(names(&emu, "cmdb_ci_server", "").await, ["new-box"]);

    let r = emu
        .send(
            Method::PATCH,
            &format!("/api/now/table/cmdb_ci_computer/{id}"),
            &json!({"ram": "4096"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["result"]["ram"], "4096");
    assert_eq!(r.body["result"]["sys_mod_count"], "1");
    let r = emu
        .send(
            Method::PUT,
            &format!("/api/now/table/cmdb_ci_computer/{id}"),
            &json!({"ram": "lots"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/cmdb_ci_computer",
            &json!("not an object"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Auto-numbered tables.
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/ast_contract",
            &json!({"short_description": "c"}),
        )
        .await;
    assert_eq!(r.body["result"]["number"], "CNTR0001001");
    // Passwords are stored hashed and never returned; the new user can log in.
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_user",
            &json!({"user_name": "probe", "user_password": "pw1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body["result"].get("user_password").is_none());
    let login = emu
        .client
        .get(emu.url("/api/now/table/sys_user?sysparm_limit=1"))
        .basic_auth("probe", Some("pw1"))
        .send()
        .await
        .expect("send");
    // Authenticated: a new user has no role, so the read is refused rather than unauthorized.
    assert_eq!(login.status(), StatusCode::FORBIDDEN);

    let r = emu
        .send(
            Method::DELETE,
            &format!("/api/now/table/cmdb_ci_computer/{id}"),
            &Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = emu
        .get(&format!("/api/now/table/cmdb_ci_computer/{id}"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = emu
        .send(
            Method::DELETE,
            &format!("/api/now/table/cmdb_ci_computer/{id}"),
            &Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    emu.stop().await;
}

#[tokio::test]
async fn dot_walking_in_queries_and_fields() {
    let (emu, _) = with_inventory().await;
    assert_eq!(
        names(&emu, "cmdb_ci_computer", "model_id.name=Latitude 7440").await,
        ["NYC-LT-0001"]
    );
    assert_eq!(
        names(
            &emu,
            "cmdb_ci_computer",
            "model_id.manufacturerSTARTSWITHhpe"
        )
        .await,
        ["LON-ESX-01"]
    );
    assert_eq!(
        names(
            &emu,
            "cmdb_ci_computer",
            "model_id.no_such=1^name=lon-db-02"
        )
        .await,
        ["lon-db-02"]
    );
    let r = emu
        .get("/api/now/table/cmdb_ci_computer?sysparm_query=name=NYC-LT-0001&sysparm_fields=name,model_id.name,model_id.type,model_id.nothing")
        .await;
    assert_eq!(
        r.body["result"],
        json!([{"name": "NYC-LT-0001", "model_id.name": "Latitude 7440", "model_id.type": "Laptop"}])
    );
    let t = emu
        .records(
            "x_fls_flexera_fnms_import_transaction",
            "import_run.number=IRUN0001001^import_run.state=succeeded",
        )
        .await;
    assert_eq!(t.len(), 1);
    // Passwords stay out of reach through references too.
    let all = emu.records("oauth_credential", "").await.len();
    assert_eq!(
        emu.records("oauth_credential", "user.user_password=x")
            .await
            .len(),
        all
    );
    let r = emu
        .get("/api/now/table/oauth_credential?sysparm_fields=user.user_password,user.user_name")
        .await;
    let first = &r.body["result"][0];
    assert!(first.get("user.user_password").is_none());
    assert_eq!(first["user.user_name"], "fnms.integration");
    emu.stop().await;
}
