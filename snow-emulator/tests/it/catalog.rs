//! The catalog is data: a changed copy changes the instance, an invalid one stops it.

use std::path::{Path, PathBuf};

use snow_emulator::Config;

use crate::check::{Emulator, fixture_json};

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

#[tokio::test]
async fn an_edited_catalog_changes_tables_and_maps() {
    let (_dir, catalog) = catalog_copy();
    // A new column on Computer, filled by a new field map; a new table.
    let cmdb = catalog.join("tables/cmdb.toml");
    let text = std::fs::read_to_string(&cmdb).expect("read");
    let text = text.replace(
        "virtual = { type = \"boolean\", label = \"Is Virtual\", default = \"false\" }",
        "virtual = { type = \"boolean\", label = \"Is Virtual\", default = \"false\" }\nu_host_name = { type = \"string\", label = \"Host\" }",
    );
    std::fs::write(&cmdb, text + "\n[[table]]\nname = \"u_extra\"\nlabel = \"Extra\"\n[table.columns]\nname = { type = \"string\" }\n").expect("write");
    let maps = catalog.join("transform_maps/inventory.toml");
    let text = std::fs::read_to_string(&maps).expect("read");
    let text = text.replace(
        "[[map.field]]\nsource = \"u_inventorydate\"",
        "[[map.field]]\nsource = \"u_hostcomputername\"\ntarget = \"u_host_name\"\n\n[[map.field]]\nsource = \"u_inventorydate\"",
    );
    std::fs::write(&maps, text).expect("write");

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
    let vm = &emu
        .records("cmdb_ci_computer", "u_host_name=LON-ESX-01")
        .await;
    assert_eq!(vm.len(), 1);
    assert_eq!(vm[0]["name"], "LON-APP-07");
    assert!(emu.records("u_extra", "").await.is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn an_invalid_catalog_stops_the_start() {
    let (_dir, catalog) = catalog_copy();
    let maps = catalog.join("transform_maps/inventory.toml");
    let text = std::fs::read_to_string(&maps).expect("read");
    std::fs::write(
        &maps,
        text.replace("converter = \"bytes_to_mb\"", "converter = \"bytes_to_tb\""),
    )
    .expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = Config {
        catalog_dir: Some(catalog),
        ..Default::default()
    };
    let err = snow_emulator::serve(listener, config, std::future::pending())
        .await
        .expect_err("an invalid catalog is refused");
    let message = format!("{err:#}");
    assert!(message.contains("bytes_to_tb"), "{message}");
    assert!(message.contains("FNMS Inventory -> Computer"), "{message}");
}

#[tokio::test]
async fn a_catalog_without_what_the_app_needs_is_refused() {
    let (_dir, catalog) = catalog_copy();
    let app = catalog.join("tables/flexera_integration.toml");
    let text = std::fs::read_to_string(&app).expect("read");
    std::fs::write(
        &app,
        text.replace(
            "transaction_id = { type = \"string\", label = \"Transaction ID\", index = true }\n",
            "",
        ),
    )
    .expect("write");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = Config {
        catalog_dir: Some(catalog),
        ..Default::default()
    };
    let err = snow_emulator::serve(listener, config, std::future::pending())
        .await
        .expect_err("refused");
    assert!(format!("{err:#}").contains("transaction_id"), "{err:#}");
}
