//! The catalog is data: a changed copy changes the instance, an invalid one stops it.

use std::path::{Path, PathBuf};

use snow_emulator::Config;

use crate::check::{Emulator, fixture_json, segment};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn catalog_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog"),
        &catalog,
    );
    (dir, catalog)
}

/// An instance on `catalog` with the golden inventory imported, and a token.
async fn start_with_inventory(catalog: PathBuf) -> (Emulator, String) {
    let emu = Emulator::start_with(Config {
        catalog_dir: Some(catalog),
        ..Default::default()
    })
    .await;
    let token = emu.token().await;
    emu.fnms(&token, &fixture_json("requests/inventory_export.json"))
        .await;
    emu.wait_run(&token, "11111111-1111-4111-8111-111111111111")
        .await;
    (emu, token)
}

#[tokio::test]
async fn an_edited_catalog_changes_tables_and_maps() {
    let (_dir, catalog) = catalog_copy();
    // A new column on Computer, filled by a new field map; a new table.
    let cmdb = catalog.join("tables/cmdb.toml");
    let text = std::fs::read_to_string(&cmdb).expect("read");
    assert!(
        text.contains("virtual = { type = \"boolean\""),
        "cmdb.toml changed"
    );
    let text = text.replace(
        "virtual = { type = \"boolean\", label = \"Is Virtual\", default = \"false\" }",
        "virtual = { type = \"boolean\", label = \"Is Virtual\", default = \"false\" }\nu_host_name = { type = \"string\", label = \"Host\" }",
    );
    std::fs::write(&cmdb, text + "\n[[table]]\nname = \"u_extra\"\nlabel = \"Extra\"\n[table.columns]\nname = { type = \"string\" }\n").expect("write");
    let maps = catalog.join("transform_maps/inventory.toml");
    let text = std::fs::read_to_string(&maps).expect("read");
    assert!(
        text.contains("[[map.field]]\nsource = \"u_inventorydate\""),
        "inventory.toml changed"
    );
    let text = text.replace(
        "[[map.field]]\nsource = \"u_inventorydate\"",
        "[[map.field]]\nsource = \"u_hostcomputername\"\ntarget = \"u_host_name\"\n\n[[map.field]]\nsource = \"u_inventorydate\"",
    );
    std::fs::write(&maps, text).expect("write");

    let (emu, _token) = start_with_inventory(catalog).await;
    let vm = &emu
        .records("cmdb_ci_computer", "u_host_name=LON-ESX-01")
        .await;
    assert_eq!(vm.len(), 1);
    assert_eq!(vm[0]["name"], "LON-APP-07");
    assert!(emu.records("u_extra", "").await.is_empty());
    emu.stop().await;
}

/// One refusal case: `fixtures/emulator/refusals/*.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Refusal {
    /// The catalog file to edit, relative to the catalog directory.
    file: String,
    /// Text that must occur in it (the case fails, rather than starting a server, if not)…
    replace: String,
    /// …and what it becomes.
    with: String,
    /// Fragments the start-up error must contain.
    expect: Vec<String>,
}

fn refusal_cases() -> Vec<(String, Refusal)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/emulator/refusals");
    let mut cases: Vec<(String, Refusal)> = std::fs::read_dir(&dir)
        .expect("refusal fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read case");
            let case = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("refusal case {}: {e}", p.display()));
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                case,
            )
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

/// Starts an instance on the edited catalog; returns the start-up error (bounded: a catalog
/// that is wrongly accepted fails the case instead of serving forever).
async fn start_error(catalog: PathBuf) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = Config {
        catalog_dir: Some(catalog),
        ..Default::default()
    };
    let started = snow_emulator::serve(listener, config, std::future::pending());
    match tokio::time::timeout(std::time::Duration::from_secs(10), started).await {
        Ok(Err(e)) => Ok(format!("{e:#}")),
        Ok(Ok(())) => Err("the server ended without an error".into()),
        Err(_) => Err("the catalog was accepted: the server is still running".into()),
    }
}

#[tokio::test]
async fn invalid_catalogs_are_refused_with_their_message() {
    let cases = refusal_cases();
    assert!(cases.len() >= 5, "refusal fixtures are missing");
    let mut failures = Vec::new();
    for (name, case) in cases {
        let (_dir, catalog) = catalog_copy();
        let path = catalog.join(&case.file);
        let text = std::fs::read_to_string(&path).expect("read catalog file");
        assert!(
            text.contains(&case.replace),
            "{name}: {} does not contain the text to replace",
            case.file
        );
        std::fs::write(&path, text.replace(&case.replace, &case.with)).expect("write");
        match start_error(catalog).await {
            Ok(message) => {
                for fragment in &case.expect {
                    if !message.contains(fragment.as_str()) {
                        failures.push(format!("{name}: {fragment:?} not in: {message}"));
                    }
                }
            }
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A row that left a record unchanged only because a reference was left out unresolved
/// (`choice_action = ignore`) is not remembered: here the Software Model map (edited to run
/// only for computer 2) creates the model on the third row, whose source values the Discovery
/// Model map reads are those of the second, and the discovery model must take the reference.
#[tokio::test]
async fn an_unresolved_reference_is_looked_up_again_on_a_row_with_the_same_values() {
    let (_dir, catalog) = catalog_copy();
    let maps = catalog.join("transform_maps/applications.toml");
    let text = std::fs::read_to_string(&maps).expect("read");
    let anchor = "target_table = \"cmdb_software_product_model\"\norder = 100\n";
    assert!(text.contains(anchor), "applications.toml changed");
    let text = text.replace(
        anchor,
        &format!("{anchor}condition = [ {{ field = \"u_computerid\", equals = \"2\" }} ]\n"),
    );
    std::fs::write(&maps, text).expect("write");
    let (emu, token) = start_with_inventory(catalog).await;
    let run = "33333333-3333-4333-8333-333333333333";
    let record = |computer: &str| {
        format!(
            "<Application><ComputerID>{computer}</ComputerID><ApplicationID>907</ApplicationID>\
             <DisplayName>App 907</DisplayName><Publisher>P</Publisher><Version>1</Version>\
             </Application>"
        )
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Applications>{}{}{}</Applications>\n",
        record("1"),
        record("1"),
        record("2")
    );
    let tid = uuid::Uuid::new_v4().to_string();
    let body = segment(&tid, "application_export", run, 1, true, &xml, 3);
    let r = emu.fnms(&token, &body).await;
    assert_eq!(r["returnCode"], 0, "{r}");
    emu.wait_run(&token, run).await;
    let models = emu
        .records(
            "cmdb_software_product_model",
            "x_fls_flexera_fnms_application_id=907",
        )
        .await;
    assert_eq!(models.len(), 1, "created by the third row: {models:?}");
    let discovery = emu
        .records(
            "cmdb_sam_sw_discovery_model",
            "x_fls_flexera_fnms_application_id=907",
        )
        .await;
    assert_eq!(discovery.len(), 1, "{discovery:?}");
    assert_eq!(
        discovery[0]["model"]["value"], models[0]["sys_id"],
        "the discovery model references the model: {discovery:?}"
    );
    emu.stop().await;
}
