//! `conformance generate`: FNMS operations databases of any size with a realistic shape,
//! deterministic under a seed (schema `fixtures/fnms/schema.sql`).
//!
//! Shape at scale 1 (issue 10's enterprise estate): 100,000 computers of which a fifth are
//! virtual machines, each on one of the VM hosts; 5,000 contracts covering 20,009 computers in
//! all; 2,000,000 installations over 20,000 applications whose popularity has a long tail (a
//! few applications are on most computers, most are on a few).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};

/// How many of each thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Estate {
    pub computers: u64,
    pub contracts: u64,
    pub contract_links: u64,
    pub applications: u64,
    pub installations: u64,
}

impl Estate {
    pub const FULL: Estate = Estate {
        computers: 100_000,
        contracts: 5_000,
        contract_links: 20_009,
        applications: 20_000,
        installations: 2_000_000,
    };

    /// The full estate times `scale` (each count at least 1).
    pub fn scaled(scale: f64) -> Estate {
        let s = |n: u64| ((n as f64 * scale).round() as u64).max(1);
        Estate {
            computers: s(Self::FULL.computers),
            contracts: s(Self::FULL.contracts),
            contract_links: s(Self::FULL.contract_links),
            applications: s(Self::FULL.applications),
            installations: s(Self::FULL.installations),
        }
    }

    /// Virtual machines: a fifth of the computers.
    pub fn virtual_machines(&self) -> u64 {
        self.computers / 5
    }

    /// VM hosts: one per ten virtual machines, at least one when there are VMs.
    pub fn hosts(&self) -> u64 {
        if self.virtual_machines() == 0 {
            0
        } else {
            (self.virtual_machines() / 10).max(1)
        }
    }

    /// Installations that fit: a computer holds each application at most once.
    fn installations_possible(&self) -> u64 {
        self.installations
            .min(self.computers * self.applications.div_ceil(2))
    }
}

/// What to write.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub out: PathBuf,
    pub estate: Estate,
    pub seed: u64,
}

/// Fixed reference time: generated data must not depend on when it is generated.
const EPOCH: &str = "2026-01-01 00:00:00";

pub fn generate(options: &GenerateOptions) -> anyhow::Result<Estate> {
    let out = &options.out;
    if out.exists() {
        std::fs::remove_file(out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    let mut conn =
        Connection::open(out).with_context(|| format!("cannot create {}", out.display()))?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
    conn.execute_batch(&schema()?)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let estate = options.estate;
    let tx = conn.transaction()?;
    tx.execute_batch(
        "INSERT INTO LicenseOption (Name, Licensed, ExpiryDate) VALUES ('ServiceNowIntegration', 1, NULL);",
    )?;
    computers(&tx, &mut rng, &estate)?;
    applications(&tx, &mut rng, &estate)?;
    let installations = installations(&tx, &mut rng, &estate)?;
    let links = contracts(&tx, &mut rng, &estate)?;
    tx.commit()?;
    Ok(Estate {
        installations,
        contract_links: links,
        ..estate
    })
}

fn schema() -> anyhow::Result<String> {
    let path = crate::default_fixtures_dir()
        .join("fnms")
        .join("schema.sql");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// A timestamp `seconds` before [`EPOCH`], in FNMS's text form.
fn before_epoch(seconds: i64) -> String {
    let epoch =
        chrono::NaiveDateTime::parse_from_str(EPOCH, "%Y-%m-%d %H:%M:%S").unwrap_or_default();
    (epoch - chrono::Duration::seconds(seconds))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

const SITES: &[&str] = &["NYC", "LON", "FRA", "SGP", "SYD", "TOR", "PAR", "BLR"];
const CLIENT_OS: &[&str] = &[
    "Microsoft Windows 11 Enterprise",
    "Microsoft Windows 10 Enterprise",
    "macOS 14 Sonoma",
    "Ubuntu 22.04 LTS",
];
const SERVER_OS: &[&str] = &[
    "Microsoft Windows Server 2022 Standard",
    "Red Hat Enterprise Linux 9.3",
    "Ubuntu 22.04 LTS",
    "Oracle Solaris 11.4",
];
const CLIENT_MODELS: &[(&str, &str, &str)] = &[
    ("Dell Inc.", "OptiPlex 7010", "Desktop"),
    ("Lenovo", "ThinkPad T14 Gen 4", "Notebook"),
    ("HP", "EliteBook 840 G10", "Notebook"),
    ("Apple Inc.", "MacBook Pro 14", "Notebook"),
];
const SERVER_MODELS: &[(&str, &str)] = &[
    ("Dell Inc.", "PowerEdge R650"),
    ("HPE", "ProLiant DL380 Gen10"),
    ("Lenovo", "ThinkSystem SR650 V2"),
];

/// Hosts first (IDs 1..=hosts), then virtual machines on them, then physical clients and
/// servers.
fn computers(tx: &Connection, rng: &mut StdRng, estate: &Estate) -> anyhow::Result<()> {
    let mut insert = tx.prepare(
        "INSERT INTO ComplianceComputer VALUES (?1, ?2, 'corp.example.com', ?3, ?4, NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'Intel(R) Xeon(R) Gold 6248', 2800, ?14, ?15, ?16, ?17, ?17)",
    )?;
    let hosts = estate.hosts();
    let vms = estate.virtual_machines();
    for id in 1..=estate.computers {
        let site = SITES[rng.random_range(0..SITES.len())];
        let updated = before_epoch(rng.random_range(0..90 * 86_400));
        let serial = format!("{:010X}", rng.random::<u64>() & 0xFF_FFFF_FFFF);
        let ip = format!("10.{}.{}.{}", id % 200, (id / 200) % 250, id % 250 + 1);
        let mac = format!(
            "02:00:{:02X}:{:02X}:{:02X}:{:02X}",
            (id >> 24) & 0xFF,
            (id >> 16) & 0xFF,
            (id >> 8) & 0xFF,
            id & 0xFF
        );
        let (name, kind, os, maker, model, chassis, category, memory, cores, host): (
            String,
            i64,
            &str,
            &str,
            &str,
            &str,
            &str,
            i64,
            i64,
            Option<u64>,
        ) = if id <= hosts {
            let (maker, model) = SERVER_MODELS[rng.random_range(0..SERVER_MODELS.len())];
            (
                format!("{site}-VMH-{id:06}"),
                3,
                "VMware ESXi 8.0.2",
                maker,
                model,
                "Rack Mount Chassis",
                "Server",
                256 << 30,
                32,
                None,
            )
        } else if id <= hosts + vms {
            let os = SERVER_OS[rng.random_range(0..SERVER_OS.len())];
            (
                format!("{site}-VM-{id:06}"),
                2,
                os,
                "VMware, Inc.",
                "VMware Virtual Platform",
                "Other",
                "Server",
                16 << 30,
                4,
                Some(rng.random_range(1..=hosts)),
            )
        } else if rng.random_range(0..10) == 0 {
            let (maker, model) = SERVER_MODELS[rng.random_range(0..SERVER_MODELS.len())];
            let os = SERVER_OS[rng.random_range(0..SERVER_OS.len())];
            (
                format!("{site}-SRV-{id:06}"),
                1,
                os,
                maker,
                model,
                "Rack Mount Chassis",
                "Server",
                64 << 30,
                16,
                None,
            )
        } else {
            let (maker, model, chassis) = CLIENT_MODELS[rng.random_range(0..CLIENT_MODELS.len())];
            let os = CLIENT_OS[rng.random_range(0..CLIENT_OS.len())];
            (
                format!("{site}-WS-{id:06}"),
                1,
                os,
                maker,
                model,
                chassis,
                "Computer",
                16 << 30,
                8,
                None,
            )
        };
        insert.execute(params![
            id as i64,
            name,
            kind,
            os,
            maker,
            model,
            serial,
            chassis,
            category,
            memory,
            512_i64 << 30,
            if kind == 3 { 2 } else { 1 },
            cores,
            ip,
            mac,
            host.map(|h| h as i64),
            updated
        ])?;
    }
    Ok(())
}

const PUBLISHERS: &[&str] = &[
    "Microsoft",
    "Adobe",
    "Google",
    "Mozilla",
    "Oracle",
    "Zoom Video Communications",
    "Atlassian",
    "VMware",
    "Citrix",
    "7-Zip",
    "Notepad++ Team",
    "Slack Technologies",
    "Cisco",
    "IBM",
    "SAP",
];

fn applications(tx: &Connection, rng: &mut StdRng, estate: &Estate) -> anyhow::Result<()> {
    for (i, name) in PUBLISHERS.iter().enumerate() {
        tx.execute(
            "INSERT INTO Publisher (PublisherID, Name) VALUES (?1, ?2)",
            params![i as i64 + 1, name],
        )?;
    }
    let mut insert = tx.prepare("INSERT INTO SoftwareTitle VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
    for id in 1..=estate.applications {
        let publisher = rng.random_range(0..PUBLISHERS.len());
        let product = format!("Product {id:05}");
        let version = format!("{}.{}", rng.random_range(1..20), rng.random_range(0..10));
        let edition = ["Standard", "Professional", "Enterprise", ""][rng.random_range(0..4)];
        let full = format!("{} {product} {version} {edition}", PUBLISHERS[publisher]);
        insert.execute(params![
            id as i64,
            full.trim_end(),
            product,
            publisher as i64 + 1,
            version,
            edition,
            before_epoch(rng.random_range(0..365 * 86_400))
        ])?;
    }
    Ok(())
}

/// Application `1 + ⌊apps·u³⌋`: the cube piles choices onto the first applications (popular)
/// and leaves a long tail of rarely installed ones.
fn popular_application(rng: &mut StdRng, apps: u64) -> u64 {
    let u: f64 = rng.random();
    1 + ((apps as f64 * u * u * u) as u64).min(apps - 1)
}

fn installations(tx: &Connection, rng: &mut StdRng, estate: &Estate) -> anyhow::Result<u64> {
    let total = estate.installations_possible();
    let mut insert = tx.prepare("INSERT INTO InstalledSoftware VALUES (?1, ?2, ?3, ?4)")?;
    let per = total / estate.computers;
    let extra = total % estate.computers;
    let mut chosen = HashSet::new();
    for computer in 1..=estate.computers {
        let want = per + u64::from(computer <= extra);
        chosen.clear();
        while (chosen.len() as u64) < want {
            // Past half the catalogue the skewed draw repeats too often; take any then.
            let app = if chosen.len() as u64 * 2 < estate.applications {
                popular_application(rng, estate.applications)
            } else {
                rng.random_range(1..=estate.applications)
            };
            if chosen.insert(app) {
                insert.execute(params![
                    computer as i64,
                    app as i64,
                    before_epoch(rng.random_range(90 * 86_400..900 * 86_400))[..10].to_owned(),
                    before_epoch(rng.random_range(0..90 * 86_400))
                ])?;
            }
        }
    }
    Ok(total)
}

const CONTRACT_TYPES: &[&str] = &["Lease", "Maintenance", "Support", "Warranty", "Purchase"];

fn contracts(tx: &Connection, rng: &mut StdRng, estate: &Estate) -> anyhow::Result<u64> {
    let mut contract = tx.prepare(
        "INSERT INTO Contract VALUES (?1, ?2, ?3, ?4, ?5, '2025-01-01', '2028-12-31', ?6, 'USD', 'Active', NULL, ?7)",
    )?;
    let mut link = tx.prepare("INSERT INTO ContractComplianceComputer VALUES (?1, ?2)")?;
    let links = estate
        .contract_links
        .min(estate.contracts * estate.computers);
    let per = links / estate.contracts;
    let extra = links % estate.contracts;
    let mut covered = HashSet::new();
    for id in 1..=estate.contracts {
        let kind = CONTRACT_TYPES[rng.random_range(0..CONTRACT_TYPES.len())];
        let vendor = SERVER_MODELS[rng.random_range(0..SERVER_MODELS.len())].0;
        contract.execute(params![
            id as i64,
            format!("CTR-{id:06}"),
            format!("{kind} contract {id}"),
            kind,
            vendor,
            rng.random_range(1_000..500_000) as f64,
            before_epoch(rng.random_range(0..90 * 86_400))
        ])?;
        covered.clear();
        let want = per + u64::from(id <= extra);
        while (covered.len() as u64) < want {
            let computer = rng.random_range(1..=estate.computers);
            if covered.insert(computer) {
                link.execute(params![id as i64, computer as i64])?;
            }
        }
    }
    Ok(links)
}

/// What `--change` touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Changed {
    pub computers: u64,
    pub contracts: u64,
    pub installations: u64,
}

/// Timestamp of changed rows: after every generated one, so a differential export with the
/// base's export time as baseline selects exactly them.
pub const CHANGE_TIME: &str = "2026-06-01 00:00:00";

/// Copies `base` to `out` and changes `percent` % of its computers, contracts and
/// installations (a new value and `UpdatedDate` = [`CHANGE_TIME`]).
pub fn change(base: &Path, out: &Path, percent: f64, seed: u64) -> anyhow::Result<Changed> {
    if base != out {
        std::fs::copy(base, out)
            .with_context(|| format!("cannot copy {} to {}", base.display(), out.display()))?;
    }
    let mut conn = Connection::open(out)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_C4A6_E000);
    let tx = conn.transaction()?;
    let mut changed = Changed::default();
    for (table, key, set) in [
        (
            "ComplianceComputer",
            "ComplianceComputerID",
            "TotalMemory = TotalMemory * 2",
        ),
        ("Contract", "ContractID", "Value = Value + 1"),
        ("InstalledSoftware", "rowid", "InstallDate = '2026-05-31'"),
    ] {
        let rows: i64 = tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        let target = (rows as f64 * percent / 100.0).round() as u64;
        let max: i64 = tx.query_row(
            &format!("SELECT coalesce(max({key}), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )?;
        let mut update = tx.prepare(&format!(
            "UPDATE {table} SET {set}, UpdatedDate = ?2 WHERE {key} = ?1 AND UpdatedDate <> ?2"
        ))?;
        let mut done = 0;
        let mut attempts = 0;
        while done < target && attempts < target * 20 + 100 {
            attempts += 1;
            done += update.execute(params![rng.random_range(1..=max.max(1)), CHANGE_TIME])? as u64;
        }
        match table {
            "ComplianceComputer" => changed.computers = done,
            "Contract" => changed.contracts = done,
            _ => changed.installations = done,
        }
    }
    tx.commit()?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Estate {
        Estate {
            computers: 200,
            contracts: 10,
            contract_links: 41,
            applications: 50,
            installations: 3_000,
        }
    }

    fn count(path: &Path, sql: &str) -> i64 {
        Connection::open(path)
            .expect("open")
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    }

    #[test]
    fn the_estate_has_the_requested_shape_and_the_seed_fixes_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = dir.path().join("a.sqlite");
        let b = dir.path().join("b.sqlite");
        for out in [&a, &b] {
            generate(&GenerateOptions {
                out: out.clone(),
                estate: small(),
                seed: 7,
            })
            .expect("generate");
        }
        assert_eq!(count(&a, "SELECT count(*) FROM ComplianceComputer"), 200);
        assert_eq!(
            count(
                &a,
                "SELECT count(*) FROM ComplianceComputer WHERE ComplianceComputerTypeID = 2"
            ),
            40
        );
        assert_eq!(
            count(
                &a,
                "SELECT count(*) FROM ComplianceComputer WHERE ComplianceComputerTypeID = 2 AND HostComplianceComputerID IN (SELECT ComplianceComputerID FROM ComplianceComputer WHERE ComplianceComputerTypeID = 3)"
            ),
            40
        );
        assert_eq!(
            count(&a, "SELECT count(*) FROM ContractComplianceComputer"),
            41
        );
        assert_eq!(count(&a, "SELECT count(*) FROM InstalledSoftware"), 3_000);
        // Long tail: the most installed application is on far more computers than the median.
        let top = count(
            &a,
            "SELECT max(n) FROM (SELECT count(*) n FROM InstalledSoftware GROUP BY SoftwareTitleID)",
        );
        let low = count(
            &a,
            "SELECT min(n) FROM (SELECT count(*) n FROM InstalledSoftware GROUP BY SoftwareTitleID)",
        );
        assert!(top > 5 * low.max(1), "top {top}, least {low}");
        let digest =
            "SELECT group_concat(ComputerName || SerialNo || UpdatedDate) FROM ComplianceComputer";
        let da: String = Connection::open(&a)
            .expect("a")
            .query_row(digest, [], |r| r.get(0))
            .expect("a");
        let db: String = Connection::open(&b)
            .expect("b")
            .query_row(digest, [], |r| r.get(0))
            .expect("b");
        assert_eq!(da, db, "same seed, same estate");
    }

    #[test]
    fn change_touches_the_requested_share() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("base.sqlite");
        let out = dir.path().join("changed.sqlite");
        generate(&GenerateOptions {
            out: base.clone(),
            estate: small(),
            seed: 1,
        })
        .expect("generate");
        let changed = change(&base, &out, 5.0, 1).expect("change");
        assert_eq!(changed.computers, 10);
        assert_eq!(changed.installations, 150);
        let sql =
            format!("SELECT count(*) FROM ComplianceComputer WHERE UpdatedDate = '{CHANGE_TIME}'");
        assert_eq!(count(&out, &sql), 10);
        assert_eq!(count(&base, &sql), 0, "the base is left alone");
    }
}
