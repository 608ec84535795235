//! The main job on the embedded default: start the emulator, export the bundled sample with
//! the exporter's default source, and show what landed in which table.

use std::io::Write;

use anyhow::Context as _;

use crate::exporter_run::{ExporterKind, run_exporter};
use crate::instance::{Count, Record, TableApi, refresh_token};
use crate::target::{Credentials, Instance};

/// Tables shown in the summary, in the order data flows through them. A label may carry an
/// encoded query after the table (`table|query`): Software Models extend Product Model, so the
/// hardware models are counted by class.
const FLOW: &[(&str, &str)] = &[
    ("x_fls_flexera_fnms_import_run", "Import Runs"),
    (
        "x_fls_flexera_fnms_import_transaction",
        "Import Transactions",
    ),
    (
        "x_fls_flexera_fnms_inventory_import",
        "staging: Inventory Imports",
    ),
    (
        "x_fls_flexera_fnms_contract_import",
        "staging: Contract Imports",
    ),
    (
        "x_fls_flexera_fnms_application_import",
        "staging: Application Imports",
    ),
    (
        "cmdb_model|sys_class_name=cmdb_model",
        "Product Models (hardware)",
    ),
    ("cmdb_ci_computer", "Computers"),
    ("cmdb_serial_number", "Serial Numbers"),
    ("cmdb_ci_vm_instance", "Virtual Machine Instances"),
    ("ast_contract", "Contracts (leases included)"),
    ("ast_lease", "Lease Instances"),
    ("contract_rel_ci", "Contract CIs (covered computers)"),
    ("cmdb_software_product_model", "Software Models"),
    ("cmdb_sam_sw_discovery_model", "Discovery Models"),
    ("cmdb_sam_sw_install", "Software Installations"),
    ("cmdb_ci_spkg", "Software (CMDB packages)"),
    ("cmdb_software_instance", "Software Instances"),
];

/// Tables filled only when installed applications go to SAM tables, resp. CMDB tables.
const SAM_TABLES: &[&str] = &[
    "cmdb_software_product_model",
    "cmdb_sam_sw_discovery_model",
    "cmdb_sam_sw_install",
];
const CMDB_SOFTWARE_TABLES: &[&str] = &["cmdb_ci_spkg", "cmdb_software_instance"];

/// Why installed applications went where they went, read through the Table API: the
/// installation-tables property and the SAM plugin's state.
async fn routing(api: &TableApi) -> anyhow::Result<(String, bool)> {
    let property = api
        .records(
            "sys_properties",
            "name=x_fls_flexera_fnms.installation_tables",
            &["value"],
            false,
            1,
        )
        .await?
        .first()
        .and_then(|r| r.get("value").cloned())
        .unwrap_or_default();
    let sam = !api
        .records(
            "sys_plugins",
            "idINcom.snc.sams,com.snc.samp^active=active",
            &["id"],
            false,
            1,
        )
        .await?
        .is_empty();
    Ok((property, sam))
}

/// The explanation printed after a zero count, when the routing explains it.
fn explain_zero(table: &str, property: &str, sam: bool) -> Option<String> {
    let plugin = if sam {
        "SAM plugin active"
    } else {
        "SAM plugin absent"
    };
    let to_sam = matches!(property, "sam" | "cmdb_and_sam") || (property == "auto" && sam);
    let to_cmdb = matches!(property, "cmdb" | "cmdb_and_sam") || (property == "auto" && !sam);
    if SAM_TABLES.contains(&table) && !to_sam {
        Some(format!("{plugin}, property {property} → CMDB tables"))
    } else if CMDB_SOFTWARE_TABLES.contains(&table) && !to_cmdb {
        Some(format!("{plugin}, property {property} → SAM tables"))
    } else {
        None
    }
}

pub struct DemoOptions {
    pub listen: String,
    pub keep_running: bool,
    pub exporter: ExporterKind,
}

/// Returns the exporter's exit code.
pub async fn run(options: DemoOptions, out: &mut dyn Write) -> anyhow::Result<i32> {
    let credentials = Credentials::from_env();
    let instance = Instance::start_embedded(&options.listen, credentials.clone()).await?;
    writeln!(
        out,
        "snow-emulator listening on {} (fresh in-memory instance)",
        instance.url
    )?;

    let token = refresh_token(&instance).await?;
    let work = tempfile::tempdir()?;
    let config = work.path().join("fnmp_servicenow_export.toml");
    let mut settings = toml::Table::new();
    settings.insert(
        "oauth_client_id".into(),
        credentials.oauth_client_id.clone().into(),
    );
    settings.insert(
        "oauth_client_secret".into(),
        credentials.oauth_client_secret.clone().into(),
    );
    settings.insert("poll_interval_ms".into(), 200.into());
    std::fs::write(&config, toml::to_string(&settings)?)?;
    let args = vec![
        "-url".to_owned(),
        instance.url.clone(),
        "-user".to_owned(),
        credentials.integration_user.clone(),
        "-token".to_owned(),
        token,
        "--config".to_owned(),
        config.display().to_string(),
    ];
    writeln!(
        out,
        "$ fnmp_servicenow_export -url {} -user {} -token <refresh token> --config <client id and secret>\n",
        instance.url, credentials.integration_user
    )?;
    let run = run_exporter(&options.exporter, args).await?;
    out.write_all(run.log.as_bytes())?;
    writeln!(out, "\nexporter exit status: {}\n", run.exit_code)?;

    let api = TableApi::new(&instance)?;
    print_flow(&api, out).await?;
    print_details(&api, out).await?;

    if options.keep_running {
        writeln!(
            out,
            "\nThe instance stays up until Ctrl-C.\n  Web UI:    {}/navpage.do  (log in as {} with the admin password)\n  Table API: curl -s -u {}:<admin password> '{}/api/now/table/x_fls_flexera_fnms_import_run?sysparm_display_value=true'",
            instance.url, credentials.admin_user, credentials.admin_user, instance.url
        )?;
        out.flush()?;
        instance.serve_until_ctrl_c().await?;
    } else {
        instance.stop().await?;
    }
    Ok(run.exit_code)
}

async fn print_flow(api: &TableApi, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "What landed where:")?;
    let (property, sam) = routing(api).await.unwrap_or_default();
    for (entry, label) in FLOW {
        let (table, query) = entry.split_once('|').unwrap_or((entry, ""));
        let count = match api
            .count(table, query)
            .await
            .with_context(|| format!("counting {table}"))?
        {
            Count::Rows(n) => n.to_string(),
            Count::InvalidTable => "(table not emulated)".to_owned(),
        };
        let why = match explain_zero(table, &property, sam) {
            Some(why) if count == "0" => format!("  ({why})"),
            _ => String::new(),
        };
        writeln!(out, "  {label:<32} {table:<40} {count:>6}{why}")?;
    }
    Ok(())
}

async fn print_details(api: &TableApi, out: &mut dyn Write) -> anyhow::Result<()> {
    let runs = api
        .records(
            "x_fls_flexera_fnms_import_run",
            "ORDERBYnumber",
            &[
                "number",
                "import_type",
                "state",
                "transactions_received",
                "records_received",
            ],
            true,
            100,
        )
        .await?;
    writeln!(out, "\nImport Runs:")?;
    table(
        out,
        &runs,
        &[
            "number",
            "import_type",
            "state",
            "transactions_received",
            "records_received",
        ],
    )?;

    let computers = api
        .records(
            "cmdb_ci_computer",
            "ORDERBYname",
            &["name", "sys_class_name", "os", "ram", "model_id"],
            true,
            1000,
        )
        .await?;
    writeln!(out, "\nComputers (cmdb_ci_computer and its classes):")?;
    table(
        out,
        &computers,
        &["name", "sys_class_name", "os", "ram", "model_id"],
    )?;

    let vms = api
        .records(
            "cmdb_ci_vm_instance",
            "ORDERBYname",
            &["name", "memory", "cpus"],
            true,
            1000,
        )
        .await?;
    writeln!(out, "\nVirtual Machine Instances (cmdb_ci_vm_instance):")?;
    table(out, &vms, &["name", "memory", "cpus"])?;
    Ok(())
}

/// A plain aligned text table.
fn table(out: &mut dyn Write, rows: &[Record], columns: &[&str]) -> std::io::Result<()> {
    let width = |c: &str| {
        rows.iter()
            .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
            .chain([c.len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = columns.iter().map(|c| width(c)).collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "  {}", line(columns.to_vec()).trim_end())?;
    for row in rows {
        let cells = columns
            .iter()
            .map(|c| row.get(*c).map_or("", String::as_str))
            .collect();
        writeln!(out, "  {}", line(cells).trim_end())?;
    }
    if rows.is_empty() {
        writeln!(out, "  (none)")?;
    }
    Ok(())
}
