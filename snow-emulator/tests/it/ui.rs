//! The web UI over HTTP, as a browser without JavaScript uses it: login and session, the
//! form token, roles, list and form views, URL exports, the app's pages and the controls.
//! (The same flows in a real browser are in conformance's browser tests.)

use reqwest::{Method, StatusCode, redirect};
use serde_json::{Value, json};

use crate::check::{CLIENT_ID, CLIENT_SECRET, TestInstance, inventory_xml, segment, urlencode};

/// A user agent with its own cookie (reqwest's cookie store is not enabled in this crate),
/// not following redirects so the tests see them.
struct Browser<'a> {
    emu: &'a TestInstance,
    client: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: StatusCode,
    location: String,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(emu: &'a TestInstance) -> Self {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            emu,
            client,
            cookie: None,
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: &[(&str, &str)]) -> Page {
        let mut request = self.client.request(method.clone(), self.emu.url(path));
        if let Some(c) = &self.cookie {
            request = request.header("Cookie", format!("JSESSIONID={c}"));
        }
        if method == Method::POST {
            request = request.form(form);
        }
        let response = request.send().await.expect("send");
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().expect("cookie");
            let value = set
                .trim_start_matches("JSESSIONID=")
                .split(';')
                .next()
                .unwrap_or_default();
            self.cookie = (!value.is_empty()).then(|| value.to_owned());
        }
        Page {
            status: response.status(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().expect("location").to_owned())
                .unwrap_or_default(),
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, &[]).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, form).await
    }

    async fn login(&mut self, user: &str, password: &str) -> Page {
        self.post(
            "/login.do",
            &[("user_name", user), ("user_password", password)],
        )
        .await
    }

    /// The session's form token, read from a page.
    async fn token(&mut self) -> String {
        let page = self.get("/navpage.do").await;
        let marker = "name=\"sysparm_ck\" value=\"";
        let start = page.body.find(marker).expect("a form token") + marker.len();
        page.body[start..start + 40].to_owned()
    }
}

/// `n` computers named `WEB-00`, `WEB-01`, … through one inventory segment, processed.
async fn computers(emu: &TestInstance, n: usize) {
    let token = emu.token().await;
    let names: Vec<String> = (0..n).map(|i| format!("WEB-{i:02}")).collect();
    let ids: Vec<String> = (0..n).map(|i| (i + 1).to_string()).collect();
    let serials: Vec<String> = (0..n).map(|i| format!("SN{i:04}")).collect();
    let records: Vec<Vec<(&str, &str)>> = (0..n)
        .map(|i| {
            vec![
                ("ComputerID", ids[i].as_str()),
                ("ComputerName", names[i].as_str()),
                ("ComputerType", "Computer"),
                ("Manufacturer", "Dell Inc."),
                ("ModelNo", "OptiPlex 7010"),
                ("SerialNo", serials[i].as_str()),
            ]
        })
        .collect();
    let run = uuid::Uuid::new_v4().to_string();
    let tid = uuid::Uuid::new_v4().to_string();
    let body = segment(
        &tid,
        "inventory_export",
        &run,
        1,
        true,
        &inventory_xml(&records),
        n as i64,
    );
    let answer = emu.fnms(&token, &body).await;
    assert_eq!(answer["returnCode"], json!(0), "{answer}");
    emu.wait_run(&token, &run).await;
}

#[tokio::test]
async fn pages_need_a_login_and_come_back_to_the_page_after_it() {
    let emu = TestInstance::start().await;
    let mut b = Browser::new(&emu);
    let page = b
        .get("/cmdb_ci_computer_list.do?sysparm_query=virtual%3Dtrue")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location,
        "/login.do?sysparm_goto=%2Fcmdb_ci_computer_list.do%3Fsysparm_query%3Dvirtual%253Dtrue"
    );
    let form = b.get(&page.location).await;
    assert!(
        form.body
            .contains("value=\"/cmdb_ci_computer_list.do?sysparm_query=virtual%3Dtrue\"")
    );
    let refused = b.login("admin", "wrong").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("User name or password invalid"));
    assert!(b.cookie.is_none());
    let done = b
        .post(
            "/login.do",
            &[
                ("user_name", "admin"),
                ("user_password", "admin"),
                (
                    "sysparm_goto",
                    "/cmdb_ci_computer_list.do?sysparm_query=virtual%3Dtrue",
                ),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.location,
        "/cmdb_ci_computer_list.do?sysparm_query=virtual%3Dtrue"
    );
    let list = b.get(&done.location).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body
            .contains("<h1>Computer <small>cmdb_ci_computer</small></h1>")
    );
    assert!(
        list.body.contains("value=\"virtual=true\""),
        "the filter shows the query"
    );
    // An outside target is not followed after login.
    let mut other = Browser::new(&emu);
    let away = other
        .post(
            "/login.do",
            &[
                ("user_name", "admin"),
                ("user_password", "admin"),
                ("sysparm_goto", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(away.location, "/navpage.do");
    // Logging out ends the session.
    let out = b.get("/logout.do").await;
    assert_eq!(out.location, "/login.do");
    assert!(b.cookie.is_none());
    emu.stop().await;
}

#[tokio::test]
async fn sessions_end_after_thirty_idle_minutes_of_instance_time() {
    let emu = TestInstance::start().await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let cookie = b.cookie.clone();
    emu.clock(&json!({"advance_seconds": 29 * 60})).await;
    assert_eq!(b.get("/navpage.do").await.status, StatusCode::OK);
    emu.clock(&json!({"advance_seconds": 31 * 60})).await;
    b.cookie = cookie;
    let expired = b.get("/navpage.do").await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER);
    assert!(expired.location.starts_with("/login.do"));
    emu.stop().await;
}

#[tokio::test]
async fn web_service_only_users_export_with_basic_but_use_no_pages() {
    let emu = TestInstance::start().await;
    let mut b = Browser::new(&emu);
    let refused = b
        .login(snow_emulator::INTEGRATION_USER, "integration")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("web service access only"));
    let basic = |path: &str| {
        emu.client
            .get(emu.url(path))
            .basic_auth(snow_emulator::INTEGRATION_USER, Some("integration"))
    };
    let csv = basic("/sys_data_source_list.do?CSV&sysparm_fields=name,format")
        .send()
        .await
        .expect("send");
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(
        csv.text().await.expect("csv"),
        "\"name\",\"format\"\n\"FNMS Data Source\",\"XML\"\n"
    );
    let page = basic("/sys_data_source_list.do")
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    // An export without credentials gets the Basic challenge, not the login page.
    let anonymous = emu
        .client
        .get(emu.url("/sys_data_source_list.do?CSV"))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    emu.stop().await;
}

fn property_value(records: &[Value]) -> String {
    records[0]["value"].as_str().expect("value").to_owned()
}

#[tokio::test]
async fn properties_change_only_with_the_session_form_token_and_take_effect_at_once() {
    let emu = TestInstance::start().await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let name = "x_fls_flexera_fnms.installation_tables";
    let path = "/system_properties_ui.do?sysparm_prefix=x_fls_flexera_fnms.";
    let page = b.get(path).await;
    assert!(
        page.body
            .contains("<option value=\"auto\" selected>Decide automatically</option>")
    );
    let forged = b
        .post(path, &[("sysparm_ck", "forged"), (name, "cmdb")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let query = format!("name={name}");
    assert_eq!(
        property_value(&emu.records("sys_properties", &query).await),
        "auto"
    );
    let token = b.token().await;
    let saved = b
        .post(path, &[("sysparm_ck", &token), (name, "cmdb")])
        .await;
    assert_eq!(saved.status, StatusCode::OK);
    assert!(saved.body.contains("take effect at once"));
    assert!(saved.body.contains("<option value=\"cmdb\" selected>"));
    assert_eq!(
        property_value(&emu.records("sys_properties", &query).await),
        "cmdb"
    );
    // Basic credentials read pages but never change anything through a form.
    let basic = emu
        .client
        .post(emu.url(path))
        .basic_auth("admin", Some("admin"))
        .form(&[("sysparm_ck", ""), (name, "sam")])
        .send()
        .await
        .expect("send");
    assert_eq!(basic.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        property_value(&emu.records("sys_properties", &query).await),
        "cmdb"
    );
    emu.stop().await;
}

#[tokio::test]
async fn lists_filter_sort_and_page_with_encoded_queries() {
    let emu = TestInstance::start().await;
    computers(&emu, 25).await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let q = urlencode("nameSTARTSWITHWEB-1^ORDERBYDESCname");
    let page = b
        .get(&format!("/cmdb_ci_computer_list.do?sysparm_query={q}"))
        .await;
    assert!(
        page.body
            .contains("Rows 1 to 10 of <span class=\"total\">10</span>")
    );
    let first = page.body.find(">WEB-19<").expect("WEB-19");
    let last = page.body.find(">WEB-10<").expect("WEB-10");
    assert!(first < last, "sorted by name, descending");
    assert!(page.body.contains("aria-sort=\"descending\""));
    assert!(
        page.body.contains("<span>nameSTARTSWITHWEB-1</span>"),
        "the breadcrumb"
    );
    // Paging: 20 a page.
    let all = b
        .get("/cmdb_ci_computer_list.do?sysparm_query=ORDERBYname")
        .await;
    assert!(
        all.body
            .contains("Rows 1 to 20 of <span class=\"total\">25</span>")
    );
    assert!(all.body.contains("sysparm_first_row=21"));
    let second = b
        .get("/cmdb_ci_computer_list.do?sysparm_query=ORDERBYname&sysparm_first_row=21")
        .await;
    assert!(
        second
            .body
            .contains("Rows 21 to 25 of <span class=\"total\">25</span>")
    );
    assert!(second.body.contains(">WEB-24<") && !second.body.contains(">WEB-00<"));
    // A table that does not exist is a 404 page, not an error envelope.
    let missing = b.get("/no_such_table_list.do").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("Invalid table no_such_table"));
    emu.stop().await;
}

#[tokio::test]
async fn forms_link_references_list_related_records_and_indent_the_payload() {
    let emu = TestInstance::start().await;
    computers(&emu, 3).await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let run = &emu.records("x_fls_flexera_fnms_import_run", "").await[0];
    let run_id = run["sys_id"].as_str().expect("run");
    let form = b
        .get(&format!(
            "/x_fls_flexera_fnms_import_run.do?sys_id={run_id}"
        ))
        .await;
    assert!(
        form.body
            .contains("1 of 1 segments processed, 3 records received"),
        "{}",
        form.body
    );
    assert!(
        form.body
            .contains("Import Transaction (Import Run) <small>(1)</small>")
    );
    let tx = &emu
        .records("x_fls_flexera_fnms_import_transaction", "")
        .await[0];
    let tx_id = tx["sys_id"].as_str().expect("transaction");
    assert!(form.body.contains(&format!(
        "/x_fls_flexera_fnms_import_transaction.do?sys_id={tx_id}"
    )));
    let tx_form = b
        .get(&format!(
            "/x_fls_flexera_fnms_import_transaction.do?sys_id={tx_id}"
        ))
        .await;
    assert!(
        tx_form
            .body
            .contains("\n  &#60;Inventory&#62;\n    &#60;ComputerID&#62;1&#60;/ComputerID&#62;"),
        "the payload, indented"
    );
    assert!(tx_form.body.contains(&format!(
        "/x_fls_flexera_fnms_import_run.do?sys_id={run_id}"
    )));
    assert!(
        tx_form
            .body
            .contains("Inventory Imports (Import Transaction) <small>(3)</small>")
    );
    let computer = &emu.records("cmdb_ci_computer", "name=WEB-01").await[0];
    let model = computer["model_id"]["value"].as_str().expect("model");
    let id = computer["sys_id"].as_str().expect("computer");
    let c_form = b.get(&format!("/cmdb_ci_computer.do?sys_id={id}")).await;
    assert!(c_form.body.contains(&format!(
        "href=\"/cmdb_model.do?sys_id={model}\">OptiPlex 7010</a>"
    )));
    assert!(
        c_form
            .body
            .contains("Serial Number (Configuration item) <small>(1)</small>")
    );
    assert!(b.get("/cmdb_ci_computer.do?sys_id=0123").await.status == StatusCode::NOT_FOUND);
    emu.stop().await;
}

#[tokio::test]
async fn url_exports_speak_csv_xml_and_jsonv2() {
    let emu = TestInstance::start().await;
    computers(&emu, 3).await;
    let get = |path: String| {
        let req = emu
            .client
            .get(emu.url(&path))
            .basic_auth("admin", Some("admin"));
        async move { req.send().await.expect("send") }
    };
    let csv = get("/cmdb_ci_computer_list.do?CSV&sysparm_query=ORDERBYname&sysparm_fields=name,serial_number,model_id,sys_class_name".into()).await;
    assert_eq!(
        csv.headers()["content-disposition"],
        "attachment; filename=\"cmdb_ci_computer.csv\""
    );
    insta::assert_snapshot!("ui_export_csv", csv.text().await.expect("csv"));
    let labels = get("/cmdb_ci_computer_list.do?CSV&sysparm_query=name=WEB-00&sysparm_fields=name,model_id&sysparm_display_value=false&sysparm_export_column_header_label=true".into()).await;
    let text = labels.text().await.expect("csv");
    assert!(
        text.starts_with("\"Name\",\"Model ID\"\n\"WEB-00\",\""),
        "{text}"
    );
    let xml = get("/cmdb_ci_computer_list.do?XML&sysparm_query=name=WEB-02".into()).await;
    let xml = xml.text().await.expect("xml");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><xml><cmdb_ci_computer>"));
    assert!(xml.contains("<name>WEB-02</name>") && xml.contains("display_value=\"OptiPlex 7010\""));
    let json: Value = get("/cmdb_ci_computer_list.do?JSONv2&sysparm_query=ORDERBYname&displayvalue=all&sysparm_fields=name,model_id".into())
        .await
        .json()
        .await
        .expect("json");
    insta::assert_json_snapshot!("ui_export_jsonv2", json, {".records[].model_id" => "[sys_id]"});
    let keys: Value = get(
        "/cmdb_ci_computer.do?JSONv2&sysparm_action=getKeys&sysparm_query=nameSTARTSWITHWEB".into(),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(keys["records"].as_array().expect("keys").len(), 3);
    emu.stop().await;
}

#[tokio::test]
async fn roles_decide_the_navigator_and_unreadable_tables_are_refused() {
    let emu = TestInstance::start().await;
    let r = emu
        .send(
            Method::POST,
            "/api/now/table/sys_user",
            &json!({"user_name": "bob", "user_password": "Bob-pass-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut b = Browser::new(&emu);
    assert_eq!(
        b.login("bob", "Bob-pass-1").await.status,
        StatusCode::SEE_OTHER
    );
    let dashboard = b.get("/navpage.do").await;
    assert_eq!(dashboard.status, StatusCode::FORBIDDEN);
    assert!(!dashboard.body.contains(">Computers<"));
    let list = b.get("/cmdb_ci_computer_list.do").await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    assert!(list.body.contains("Access denied"));
    let controls = b.get("/emulator_controls.do").await;
    assert_eq!(controls.status, StatusCode::FORBIDDEN);
    let mut admin = Browser::new(&emu);
    admin.login("admin", "admin").await;
    let page = admin.get("/navpage.do").await;
    for module in [
        ">Import Runs<",
        ">Computers<",
        ">Integration Properties<",
        ">Generate Token<",
        ">Controls<",
    ] {
        assert!(page.body.contains(module), "{module}");
    }
    emu.stop().await;
}

#[tokio::test]
async fn generate_token_gives_a_refresh_token_the_instance_accepts() {
    let emu = TestInstance::start().await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let token = b.token().await;
    let page = b
        .post(
            "/x_fls_flexera_fnms_generate_token.do",
            &[
                ("sysparm_ck", &token),
                ("user_name", snow_emulator::INTEGRATION_USER),
                ("password", "integration"),
            ],
        )
        .await;
    let marker = "aria-label=\"Refresh token\">";
    let start = page.body.find(marker).expect("a token") + marker.len();
    let refresh = &page.body[start..start + 86];
    let r = emu
        .oauth(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let wrong = b
        .post(
            "/x_fls_flexera_fnms_generate_token.do",
            &[
                ("sysparm_ck", &token),
                ("user_name", snow_emulator::INTEGRATION_USER),
                ("password", "nope"),
            ],
        )
        .await;
    assert!(wrong.body.contains("Token generation failed"));
    emu.stop().await;
}

#[tokio::test]
async fn the_controls_page_pauses_steps_moves_the_clock_and_resets() {
    let emu = TestInstance::start().await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let ck = b.token().await;
    let page = b
        .post(
            "/emulator_controls.do",
            &[("sysparm_ck", &ck), ("action", "pause")],
        )
        .await;
    assert!(page.body.contains("Worker paused"));
    assert_eq!(emu.worker("claim").await["paused"], json!(true));
    let stepped = b
        .post(
            "/emulator_controls.do",
            &[("sysparm_ck", &ck), ("action", "step")],
        )
        .await;
    assert!(
        stepped.body.contains("No transaction was waiting"),
        "{}",
        stepped.body
    );
    let before = emu.clock(&json!({"advance_seconds": 0})).await["offset_seconds"]
        .as_i64()
        .expect("offset");
    b.post(
        "/emulator_controls.do",
        &[
            ("sysparm_ck", &ck),
            ("action", "advance"),
            ("advance_seconds", "600"),
        ],
    )
    .await;
    let after = emu.clock(&json!({"advance_seconds": 0})).await["offset_seconds"]
        .as_i64()
        .expect("offset");
    assert!((after - before - 600).abs() <= 1, "{before} → {after}");
    let bad = b
        .post(
            "/emulator_controls.do",
            &[
                ("sysparm_ck", &ck),
                ("action", "faults"),
                ("faults", "{not json"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    b.post(
        "/emulator_controls.do",
        &[("sysparm_ck", &ck), ("action", "resume")],
    )
    .await;
    let reset = b
        .post(
            "/emulator_controls.do",
            &[("sysparm_ck", &ck), ("action", "reset")],
        )
        .await;
    assert!(reset.body.contains("Instance reset"));
    assert!(
        emu.clock(&json!({"advance_seconds": 0})).await["offset_seconds"]
            .as_i64()
            .expect("offset")
            .abs()
            <= 1
    );
    emu.stop().await;
}

#[tokio::test]
async fn an_administrator_edits_a_record_from_its_form() {
    let emu = TestInstance::start().await;
    computers(&emu, 1).await;
    let mut b = Browser::new(&emu);
    b.login("admin", "admin").await;
    let id = emu.records("cmdb_ci_computer", "name=WEB-00").await[0]["sys_id"]
        .as_str()
        .expect("sys_id")
        .to_owned();
    let path = format!("/cmdb_ci_computer.do?sys_id={id}");
    let view = b.get(&path).await;
    assert!(view.body.contains("id=\"edit_record\""), "an Edit link");
    assert!(!view.body.contains("name=\"os\""), "read-only until Edit");
    let edit = b.get(&format!("{path}&sysparm_edit=true")).await;
    assert!(edit.body.contains("name=\"os\""));
    let ck = b.token().await;
    let saved = b
        .post(
            &path,
            &[
                ("sysparm_ck", &ck),
                ("os", "Windows 12"),
                ("sys_created_by", "mallory"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(saved.location, format!("{path}&sysparm_updated=true"));
    let record = &emu.records("cmdb_ci_computer", "name=WEB-00").await[0];
    assert_eq!(record["os"], json!("Windows 12"));
    assert_eq!(record["sys_updated_by"], json!("admin"));
    assert_ne!(
        record["sys_created_by"],
        json!("mallory"),
        "system columns are not editable"
    );
    let shown = b.get(&saved.location).await;
    assert!(shown.body.contains("Record updated"));
    emu.stop().await;
}
