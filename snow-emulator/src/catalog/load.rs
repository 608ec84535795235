//! Reading and validating catalog files. Every mistake an administrator can make in a file
//! is reported with the file and the table, column or map it concerns; the emulator does not
//! start on an invalid catalog.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail, ensure};

use super::files::{
    ColumnDef, ConditionDef, FieldDef, IdentificationDef, ImportTypesFile, MapDef, MapsFile,
    MatchDef, TableDef, TablesFile,
};
use super::model::*;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));
}

/// The catalog built into the binary (the files under `snow-emulator/catalog/`).
pub fn load_embedded() -> Result<Catalog> {
    build(
        embedded::EMBEDDED
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect(),
    )
}

/// The access rules of a catalog; a catalog without `acl/` files gets the embedded ones, so
/// that a replacement catalog of tables and maps keeps the instance's security.
fn acl_policy(files: Vec<(String, String)>) -> Result<crate::acl::Policy> {
    if !files.is_empty() {
        return crate::acl::Policy::parse(&files);
    }
    let embedded: Vec<(String, String)> = embedded::EMBEDDED
        .iter()
        .filter(|(path, _)| path.starts_with("acl/"))
        .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
        .collect();
    crate::acl::Policy::parse(&embedded)
}

/// A catalog directory laid out like `snow-emulator/catalog/`.
pub fn load_dir(dir: &Path) -> Result<Catalog> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)
        .with_context(|| format!("failed to read catalog directory {}", dir.display()))?;
    ensure!(
        !files.is_empty(),
        "catalog directory {} holds no .toml file",
        dir.display()
    );
    build(files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            out.push((rel, text));
        }
    }
    Ok(())
}

fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 80
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("sqlite_")
}

fn build(files: Vec<(String, String)>) -> Result<Catalog> {
    let mut table_defs: Vec<(String, TableDef)> = Vec::new();
    let mut map_defs: Vec<(String, MapDef)> = Vec::new();
    let mut ident_defs: HashMap<String, IdentificationDef> = HashMap::new();
    let mut import_defs = Vec::new();
    let mut acl_files = Vec::new();
    let mut record_files = Vec::new();
    for (path, text) in files {
        if path.starts_with("tables/") {
            let file: TablesFile =
                toml::from_str(&text).with_context(|| format!("catalog file {path}"))?;
            table_defs.extend(file.table.into_iter().map(|t| (path.clone(), t)));
        } else if path.starts_with("transform_maps/") {
            let file: MapsFile =
                toml::from_str(&text).with_context(|| format!("catalog file {path}"))?;
            map_defs.extend(file.map.into_iter().map(|m| (path.clone(), m)));
            for ident in file.identification {
                ensure!(
                    !ident_defs.contains_key(&ident.name),
                    "catalog file {path}: identification {:?} is declared twice",
                    ident.name
                );
                ident_defs.insert(ident.name.clone(), ident);
            }
        } else if path == "import_types.toml" {
            let file: ImportTypesFile =
                toml::from_str(&text).with_context(|| format!("catalog file {path}"))?;
            import_defs.extend(file.import_type);
        } else if path.starts_with("acl/") {
            acl_files.push((path, text));
        } else if path.starts_with("records/") {
            record_files.push((path, text));
        } else {
            bail!(
                "catalog file {path}: not under tables/, transform_maps/, acl/ or records/, nor import_types.toml"
            );
        }
    }
    let mut catalog = resolve_tables(table_defs)?;
    catalog.acl = acl_policy(acl_files)?;
    let maps = map_defs
        .into_iter()
        .map(|(path, def)| {
            let name = def.name.clone();
            resolve_map(&mut catalog, &ident_defs, def)
                .with_context(|| format!("catalog file {path}: transform map {name:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    for m in &maps {
        ensure!(
            seen.insert(m.name.clone()),
            "transform map {:?} is declared twice",
            m.name
        );
        // The worker and the engine write staging and target rows with one INSERT over
        // every column; out-of-row columns are for the app's own records.
        for t in [&m.source_table, &m.target_table] {
            ensure!(
                catalog
                    .table(t)
                    .is_none_or(|t| t.columns.iter().all(|c| !c.out_of_row)),
                "transform map {:?}: table {t} has an out-of-row column; staging and target tables cannot",
                m.name
            );
        }
    }
    catalog.maps = maps;
    catalog.maps.sort_by(|a, b| {
        (&a.source_table, a.order, &a.name).cmp(&(&b.source_table, b.order, &b.name))
    });
    for def in import_defs {
        let staging = catalog.table(&def.staging_table).ok_or_else(|| {
            anyhow!(
                "import type {}: unknown staging table {}",
                def.transaction_type,
                def.staging_table
            )
        })?;
        ensure!(
            staging
                .column(&def.transaction_column)
                .is_some_and(|c| c.kind == ColumnType::Reference),
            "import type {}: {} has no reference column {}",
            def.transaction_type,
            def.staging_table,
            def.transaction_column
        );
        ensure!(
            staging.columns.iter().all(|c| !c.out_of_row),
            "import type {}: staging table {} cannot have an out-of-row column",
            def.transaction_type,
            def.staging_table
        );
        ensure!(
            catalog.import_type(&def.transaction_type).is_none(),
            "import type {} is declared twice",
            def.transaction_type
        );
        catalog.import_types.push(ImportType {
            transaction_type: def.transaction_type,
            import_type: def.import_type,
            root: def.root,
            record: def.record,
            staging_table: def.staging_table,
            transaction_column: def.transaction_column,
            requires_sam: def.requires_sam,
        });
    }
    rebuild_physical(&mut catalog)?;
    super::records::add(&mut catalog, record_files)?;
    Ok(catalog)
}

fn resolve_column(table: &str, name: &str, def: &ColumnDef) -> Result<Column> {
    let ctx = || format!("table {table}, column {name}");
    ensure!(valid_identifier(name), "{}: invalid column name", ctx());
    let kind = ColumnType::parse(&def.kind)
        .ok_or_else(|| anyhow!("{}: unknown type {:?}", ctx(), def.kind))?;
    match kind {
        ColumnType::Reference => ensure!(
            def.reference.is_some(),
            "{}: a reference column needs `reference`",
            ctx()
        ),
        ColumnType::Choice => ensure!(
            !def.choices.is_empty(),
            "{}: a choice column needs `choices`",
            ctx()
        ),
        _ => ensure!(
            def.reference.is_none() && def.choices.is_empty(),
            "{}: only reference columns take `reference`, only choice columns `choices`",
            ctx()
        ),
    }
    if let Some(d) = &def.default {
        crate::store::to_sql(kind, d).map_err(|e| anyhow!("{}: default: {e}", ctx()))?;
    }
    ensure!(
        !def.out_of_row || kind == ColumnType::Xml,
        "{}: only long-text (xml) columns can be stored out of row",
        ctx()
    );
    Ok(Column {
        name: name.to_owned(),
        label: def.label.clone().unwrap_or_else(|| name.to_owned()),
        kind,
        reference: def.reference.clone(),
        choices: def
            .choices
            .iter()
            .map(|c| Choice {
                value: c.value.clone(),
                label: c.label.clone(),
            })
            .collect(),
        default: def.default.clone(),
        index: def.index,
        index_binary: false,
        out_of_row: def.out_of_row,
    })
}

fn sys_column(name: &str) -> Column {
    let (kind, label) = match name {
        "sys_id" => (ColumnType::String, "Sys ID"),
        "sys_class_name" => (ColumnType::Choice, "Class"),
        "sys_created_on" => (ColumnType::DateTime, "Created"),
        "sys_created_by" => (ColumnType::String, "Created by"),
        "sys_updated_on" => (ColumnType::DateTime, "Updated"),
        "sys_updated_by" => (ColumnType::String, "Updated by"),
        _ => (ColumnType::Integer, "Updates"),
    };
    Column {
        name: name.to_owned(),
        label: label.to_owned(),
        kind,
        reference: None,
        choices: Vec::new(),
        default: None,
        index: false,
        index_binary: false,
        out_of_row: false,
    }
}

fn resolve_tables(defs: Vec<(String, TableDef)>) -> Result<Catalog> {
    let mut by_name: BTreeMap<String, (String, TableDef)> = BTreeMap::new();
    for (path, def) in defs {
        ensure!(
            valid_identifier(&def.name),
            "catalog file {path}: invalid table name {:?}",
            def.name
        );
        if let Some(s) = &def.storage {
            ensure!(
                s == "own",
                "catalog file {path}: table {}: storage must be \"own\"",
                def.name
            );
        }
        if let Some((other, _)) = by_name.get(&def.name) {
            bail!("table {} is declared in {other} and {path}", def.name);
        }
        by_name.insert(def.name.clone(), (path, def));
    }
    // Ancestors (nearest first), checking parents exist and there is no cycle.
    let mut ancestors: HashMap<String, Vec<String>> = HashMap::new();
    for (name, (path, _)) in &by_name {
        let mut chain = Vec::new();
        let mut cur = name.clone();
        while let Some(parent) = by_name.get(&cur).and_then(|(_, d)| d.extends.clone()) {
            ensure!(
                by_name.contains_key(&parent),
                "catalog file {path}: table {cur} extends unknown table {parent}"
            );
            ensure!(
                parent != *name && !chain.contains(&parent),
                "table {name}: circular `extends`"
            );
            chain.push(parent.clone());
            cur = parent;
        }
        ancestors.insert(name.clone(), chain);
    }
    let physical_of = |name: &str| -> String {
        let mut cur = name.to_owned();
        loop {
            let Some((_, def)) = by_name.get(&cur) else {
                return cur;
            };
            match &def.extends {
                Some(parent) if def.storage.is_none() => cur = parent.clone(),
                _ => return cur,
            }
        }
    };
    let mut tables = BTreeMap::new();
    for (name, (path, def)) in &by_name {
        let mut columns: Vec<Column> = SYS_COLUMNS.iter().map(|c| sys_column(c)).collect();
        let chain = &ancestors[name];
        for owner in chain.iter().rev().chain(std::iter::once(name)) {
            let (_, owner_def) = &by_name[owner];
            for (col_name, col_def) in &owner_def.columns {
                ensure!(
                    !columns.iter().any(|c| &c.name == col_name),
                    "catalog file {path}: table {owner}: column {col_name} is already defined"
                );
                let col = resolve_column(owner, col_name, col_def)
                    .with_context(|| format!("catalog file {path}"))?;
                if let Some(r) = &col.reference {
                    ensure!(
                        by_name.contains_key(r),
                        "catalog file {path}: table {owner}, column {col_name}: unknown referenced table {r}"
                    );
                }
                columns.push(col);
            }
        }
        let physical = physical_of(name);
        let classes: Vec<String> = by_name
            .keys()
            .filter(|u| physical_of(u) == physical && (*u == name || ancestors[*u].contains(name)))
            .cloned()
            .collect();
        let class_col = columns
            .iter_mut()
            .find(|c| c.name == "sys_class_name")
            .ok_or_else(|| anyhow!("internal: no sys_class_name"))?;
        class_col.choices = classes
            .iter()
            .map(|c| Choice {
                value: c.clone(),
                label: by_name[c].1.label.clone().unwrap_or_else(|| c.clone()),
            })
            .collect();
        let has = |c: &str| columns.iter().any(|col| col.name == c);
        let display = match &def.display {
            Some(d) => {
                ensure!(
                    has(d),
                    "catalog file {path}: table {name}: display column {d} does not exist"
                );
                d.clone()
            }
            None if has("name") => "name".to_owned(),
            None if has("number") => "number".to_owned(),
            None => "sys_id".to_owned(),
        };
        if def.number_prefix.is_some() {
            ensure!(
                has("number"),
                "catalog file {path}: table {name}: number_prefix needs a `number` column"
            );
        }
        let number_prefix = def.number_prefix.clone().or_else(|| {
            chain
                .iter()
                .find_map(|a| by_name[a].1.number_prefix.clone())
        });
        let declared = std::iter::once(name)
            .chain(chain.iter())
            .find_map(|t| by_name[t].1.list.clone());
        let list = list_columns(path, name, declared, &columns, &display)?;
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        tables.insert(
            name.clone(),
            Table {
                name: name.clone(),
                label: def.label.clone().unwrap_or_else(|| name.clone()),
                parent: def.extends.clone(),
                covers_physical: physical == *name,
                physical,
                classes,
                display,
                number_prefix,
                list,
                columns,
                index,
            },
        );
    }
    Ok(Catalog {
        tables,
        physical: Vec::new(),
        import_types: Vec::new(),
        records: Vec::new(),
        maps: Vec::new(),
        acl: crate::acl::Policy::default(),
    })
}

/// A table's list view: the declared columns (each must exist and not be a password), or the
/// display column, the first six own columns and the update time.
fn list_columns(
    path: &str,
    table: &str,
    declared: Option<Vec<String>>,
    columns: &[Column],
    display: &str,
) -> Result<Vec<String>> {
    if let Some(list) = declared {
        for name in &list {
            ensure!(
                columns
                    .iter()
                    .any(|c| &c.name == name && c.kind != ColumnType::Password),
                "catalog file {path}: table {table}: list column {name} does not exist or cannot be listed"
            );
        }
        return Ok(list);
    }
    let mut list = vec![display.to_owned()];
    let usable = |c: &Column| c.kind != ColumnType::Password && c.kind != ColumnType::Xml;
    let own = columns
        .iter()
        .filter(|c| usable(c) && !SYS_COLUMNS.contains(&c.name.as_str()) && c.name != display);
    list.extend(own.take(6).map(|c| c.name.clone()));
    list.push("sys_updated_on".to_owned());
    Ok(list)
}

/// Builds the physical tables (after maps have marked the columns they need indexed).
/// The columns of a map's one index over its coalesce fields, in their order: for two or more
/// fields, none compared case-sensitively (a NOCASE index cannot serve a BINARY comparison).
/// Rows arrive grouped by their first key (installations by computer), so such an index
/// grows in a few places per segment, where one index per field would take each row's second
/// key at a random page.
fn coalesce_key_index(coalesce: &[&FieldMap]) -> Option<Vec<String>> {
    (coalesce.len() >= 2 && coalesce.iter().all(|f| !f.case_sensitive))
        .then(|| coalesce.iter().map(|f| f.target.clone()).collect())
}

fn rebuild_physical(catalog: &mut Catalog) -> Result<()> {
    let mut physical: BTreeMap<String, PhysicalTable> = BTreeMap::new();
    for table in catalog.tables.values() {
        let entry = physical
            .entry(table.physical.clone())
            .or_insert_with(|| PhysicalTable {
                name: table.physical.clone(),
                columns: Vec::new(),
                has_subclasses: false,
                key_indexes: Vec::new(),
            });
        if table.name != table.physical {
            entry.has_subclasses = true;
        }
        for col in &table.columns {
            match entry.columns.iter_mut().find(|c| c.name == col.name) {
                Some(existing) => {
                    ensure!(
                        existing.kind.is_numeric() == col.kind.is_numeric(),
                        "column {} has conflicting types within the {} hierarchy",
                        col.name,
                        table.physical
                    );
                    ensure!(
                        existing.out_of_row == col.out_of_row,
                        "column {} is stored out of row in only part of the {} hierarchy",
                        col.name,
                        table.physical
                    );
                    existing.index |= col.index;
                    existing.index_binary |= col.index_binary;
                }
                None => entry.columns.push(col.clone()),
            }
        }
    }
    for map in &catalog.maps {
        let coalesce: Vec<&FieldMap> = map.fields.iter().filter(|f| f.coalesce).collect();
        let (Some(key), Some(target)) = (
            coalesce_key_index(&coalesce),
            catalog.tables.get(&map.target_table),
        ) else {
            continue;
        };
        if let Some(p) = physical.get_mut(&target.physical)
            && !p.key_indexes.contains(&key)
        {
            p.key_indexes.push(key);
        }
    }
    catalog.physical = physical.into_values().collect();
    Ok(())
}

fn resolve_condition(source: &Table, def: &ConditionDef) -> Result<Condition> {
    ensure!(
        source.column(&def.field).is_some(),
        "condition on unknown source column {}",
        def.field
    );
    build_condition(def)
}

/// A condition on a named value (a source column, or an engine context variable).
fn build_condition(def: &ConditionDef) -> Result<Condition> {
    let lower = |v: &str| v.trim().to_lowercase();
    let lower_all = |vs: &[String]| vs.iter().map(|v| lower(v)).collect::<Vec<_>>();
    let mut ops = Vec::new();
    if let Some(v) = &def.equals {
        ops.push(CondOp::Equals(lower(v)));
    }
    if let Some(v) = &def.not_equals {
        ops.push(CondOp::NotEquals(lower(v)));
    }
    if let Some(v) = &def.in_list {
        ops.push(CondOp::In(lower_all(v)));
    }
    if let Some(v) = &def.contains_any {
        ops.push(CondOp::ContainsAny(lower_all(v)));
    }
    if let Some(v) = &def.contains_all {
        ops.push(CondOp::ContainsAll(lower_all(v)));
    }
    if let Some(v) = def.is_empty {
        ops.push(CondOp::IsEmpty(v));
    }
    ensure!(
        ops.len() == 1,
        "condition on {} needs exactly one of equals, not_equals, in, contains_any, contains_all, is_empty",
        def.field
    );
    Ok(Condition {
        field: def.field.clone(),
        op: ops.remove(0),
    })
}

fn mark_index(catalog: &mut Catalog, table: &str, column: &str, binary: bool) {
    let physical = catalog.tables.get(table).map(|t| t.physical.clone());
    for t in catalog.tables.values_mut() {
        if Some(&t.physical) == physical.as_ref()
            && let Some(&i) = t.index.get(column)
        {
            t.columns[i].index = true;
            t.columns[i].index_binary |= binary;
        }
    }
}

fn outcome(s: &str) -> Result<MatchOutcome> {
    MatchOutcome::parse(s)
        .ok_or_else(|| anyhow!("unknown outcome {s:?} (known: update, create, skip, next)"))
}

fn resolve_key(
    catalog: &Catalog,
    source: &Table,
    target: &Table,
    def: &MatchDef,
    to_index: &mut Vec<(String, String, bool)>,
) -> Result<MatchKey> {
    let need_source = |s: &str| -> Result<String> {
        ensure!(source.column(s).is_some(), "unknown source column {s}");
        Ok(s.to_owned())
    };
    if let Some(via) = &def.via_table {
        let table = catalog
            .table(via)
            .ok_or_else(|| anyhow!("unknown via_table {via}"))?;
        let via_column = def
            .via_column
            .clone()
            .ok_or_else(|| anyhow!("via_table {via} needs via_column"))?;
        ensure!(
            table.column(&via_column).is_some(),
            "{via} has no column {via_column}"
        );
        let reference = table
            .column(&def.column)
            .filter(|c| c.reference.is_some())
            .ok_or_else(|| anyhow!("{via} has no reference column {}", def.column))?;
        let src = def
            .source
            .as_deref()
            .ok_or_else(|| anyhow!("a via key needs `source`"))?;
        to_index.push((via.clone(), via_column.clone(), false));
        to_index.push((via.clone(), reference.name.clone(), false));
        return Ok(MatchKey::Via {
            physical: table.physical.clone(),
            column: via_column,
            reference: reference.name.clone(),
            source: need_source(src)?,
        });
    }
    ensure!(
        target.column(&def.column).is_some(),
        "unknown target column {} in a match key",
        def.column
    );
    to_index.push((target.name.clone(), def.column.clone(), false));
    let column = def.column.clone();
    Ok(match (&def.source, &def.differs_from, def.empty) {
        (Some(s), None, false) => MatchKey::Equals {
            column,
            source: need_source(s)?,
        },
        (None, Some(s), false) => MatchKey::Differs {
            column,
            source: need_source(s)?,
        },
        (None, None, true) => MatchKey::Empty { column },
        _ => bail!("match key on {column} needs exactly one of source, differs_from, empty = true"),
    })
}

fn resolve_identification(
    catalog: &Catalog,
    source: &Table,
    target: &Table,
    def: &IdentificationDef,
    to_index: &mut Vec<(String, String, bool)>,
) -> Result<Identification> {
    let mut rules = Vec::new();
    for r in &def.rule {
        let ctx = || format!("identification {:?}, case {}", def.name, r.case);
        rules.push(IdentRule {
            case: r.case.clone(),
            documented: r.documented,
            when: r
                .when
                .iter()
                .map(|c| resolve_condition(source, c))
                .collect::<Result<Vec<_>>>()
                .with_context(ctx)?,
            keys: r
                .keys
                .iter()
                .map(|k| resolve_key(catalog, source, target, k, to_index))
                .collect::<Result<Vec<_>>>()
                .with_context(ctx)?,
            one: outcome(&r.one).with_context(ctx)?,
            many: outcome(&r.many).with_context(ctx)?,
            none: outcome(&r.none).with_context(ctx)?,
            reason: r.reason.clone(),
        });
    }
    let no_match = outcome(&def.no_match)?;
    ensure!(
        no_match != MatchOutcome::Next && no_match != MatchOutcome::Update,
        "identification {:?}: no_match must be create or skip",
        def.name
    );
    Ok(Identification {
        name: def.name.clone(),
        rules,
        no_match,
    })
}

/// Columns a map's lookups filter on: (table, column, case-sensitive), indexed at load.
type IndexWanted = Vec<(String, String, bool)>;

/// One field map, checked against its source and target tables.
fn resolve_field(
    catalog: &Catalog,
    source: &Table,
    target: &Table,
    f: FieldDef,
    to_index: &mut IndexWanted,
) -> Result<FieldMap> {
    let col = target
        .column(&f.target)
        .ok_or_else(|| anyhow!("unknown target column {}", f.target))?;
    ensure!(
        !matches!(
            f.target.as_str(),
            "sys_id"
                | "sys_created_on"
                | "sys_created_by"
                | "sys_updated_on"
                | "sys_updated_by"
                | "sys_mod_count"
        ),
        "target column {} is maintained by the system",
        f.target
    );
    let rules = f
        .rule
        .iter()
        .map(|r| {
            Ok(Rule {
                value: r.value.clone(),
                when: r
                    .when
                    .iter()
                    .map(|c| resolve_condition(source, c))
                    .collect::<Result<Vec<_>>>()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    match &f.source {
        Some(s) => {
            ensure!(source.column(s).is_some(), "unknown source column {s}");
            ensure!(
                rules.is_empty() && f.default.is_none(),
                "field map to {}: `source` and `rule`/`default` exclude each other",
                f.target
            );
        }
        None => ensure!(
            f.default.is_some() || !rules.is_empty(),
            "field map to {} needs `source`, or `rule`s and a `default`",
            f.target
        ),
    }
    let values = rules.iter().map(|r| &r.value).chain(f.default.iter());
    for v in values {
        if f.target == "sys_class_name" {
            ensure!(
                target.classes.contains(v),
                "class {v} is not {} or one of its descendants",
                target.name
            );
        } else {
            crate::store::to_sql(col.kind, v)
                .map_err(|e| anyhow!("value {v:?} for {}: {e}", f.target))?;
        }
    }
    let converter = resolve_converter(catalog, col, &f, to_index)?;
    if matches!(converter, Converter::BytesToMb | Converter::BytesToGb) {
        ensure!(
            col.kind == ColumnType::Integer,
            "{} converter needs an integer target column",
            f.target
        );
    }
    let choice_action = match f.choice_action.as_deref() {
        None | Some("create") => ChoiceAction::Create,
        Some("ignore") => ChoiceAction::Ignore,
        Some("reject") => ChoiceAction::Reject,
        Some(other) => bail!("unknown choice_action {other:?}"),
    };
    ensure!(
        !f.coalesce || f.source.is_some(),
        "a coalesce field needs a source"
    );
    Ok(FieldMap {
        source: f.source,
        target: f.target,
        coalesce: f.coalesce,
        case_sensitive: f.coalesce_case_sensitive,
        converter,
        choice_action,
        default: f.default,
        rules,
    })
}

/// A field map's converter; a reference names a table whose lookup column gets an index.
fn resolve_converter(
    catalog: &Catalog,
    col: &Column,
    f: &FieldDef,
    to_index: &mut IndexWanted,
) -> Result<Converter> {
    Ok(match f.converter.as_deref() {
        None => Converter::None,
        Some("bytes_to_mb") => Converter::BytesToMb,
        Some("bytes_to_gb") => Converter::BytesToGb,
        Some("boolean_equals") => Converter::BooleanEquals(
            f.equals
                .clone()
                .ok_or_else(|| anyhow!("boolean_equals on {} needs `equals`", f.target))?,
        ),
        Some("reference") => {
            let field = f.reference_field.clone().ok_or_else(|| {
                anyhow!(
                    "reference converter on {} needs `reference_field`",
                    f.target
                )
            })?;
            let column_ref = col
                .reference
                .as_deref()
                .ok_or_else(|| anyhow!("{} is not a reference column", f.target))?;
            let referenced = f.reference_table.as_deref().unwrap_or(column_ref);
            ensure!(
                catalog
                    .table(column_ref)
                    .is_some_and(|t| t.classes.iter().any(|c| c == referenced)),
                "reference_table {referenced} is not {column_ref} or one of its descendants"
            );
            ensure!(
                catalog
                    .table(referenced)
                    .is_some_and(|t| t.column(&field).is_some()),
                "{referenced} has no column {field}"
            );
            to_index.push((referenced.to_owned(), field.clone(), false));
            Converter::Reference {
                field,
                table: referenced.to_owned(),
            }
        }
        Some(other) => bail!(
            "unknown converter {other:?} (known: bytes_to_mb, bytes_to_gb, boolean_equals, reference)"
        ),
    })
}

fn resolve_map(
    catalog: &mut Catalog,
    idents: &HashMap<String, IdentificationDef>,
    def: MapDef,
) -> Result<TransformMap> {
    let source = catalog
        .table(&def.source_table)
        .ok_or_else(|| anyhow!("unknown source table {}", def.source_table))?
        .clone();
    let target = catalog
        .table(&def.target_table)
        .ok_or_else(|| anyhow!("unknown target table {}", def.target_table))?
        .clone();
    let condition = def
        .condition
        .iter()
        .map(|c| resolve_condition(&source, c))
        .collect::<Result<Vec<_>>>()?;
    let context_condition = def
        .context_condition
        .iter()
        .map(build_condition)
        .collect::<Result<Vec<_>>>()?;
    let mut fields = Vec::new();
    let mut to_index = Vec::new();
    let identification = match &def.identification {
        None => None,
        Some(name) => {
            let ident = idents
                .get(name)
                .ok_or_else(|| anyhow!("unknown identification {name:?}"))?;
            Some(resolve_identification(
                catalog,
                &source,
                &target,
                ident,
                &mut to_index,
            )?)
        }
    };
    for f in def.field {
        fields.push(resolve_field(catalog, &source, &target, f, &mut to_index)?);
    }
    ensure!(
        identification.is_none() || !fields.iter().any(|f| f.coalesce),
        "a map matches by `identification` or by coalesce fields, not both"
    );
    // One coalesce field, or a case-sensitive one: an index per field. Several: one index
    // over them all, made in `rebuild_physical` (see `coalesce_key_index`).
    let coalesce: Vec<&FieldMap> = fields.iter().filter(|f| f.coalesce).collect();
    if coalesce_key_index(&coalesce).is_none() {
        for f in coalesce {
            to_index.push((target.name.clone(), f.target.clone(), f.case_sensitive));
        }
    }
    for (table, column, binary) in to_index {
        mark_index(catalog, &table, &column, binary);
    }
    Ok(TransformMap {
        name: def.name,
        source_table: def.source_table,
        target_table: def.target_table,
        order: def.order,
        active: def.active,
        copy_empty_fields: def.copy_empty_fields,
        insert_property: def.insert_property,
        update_property: def.update_property,
        condition,
        context_condition,
        create: def.create,
        row_target: def.row_target,
        fields,
        identification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_loads() {
        let c = load_embedded().expect("embedded catalog");
        let computer = c.table("cmdb_ci_computer").expect("computer");
        assert_eq!(computer.physical, "cmdb_ci");
        assert!(computer.classes.contains(&"cmdb_ci_esx_server".to_owned()));
        assert!(!computer.classes.contains(&"cmdb_ci_vm_instance".to_owned()));
        assert!(computer.column("ram").is_some());
        assert!(computer.column("name").is_some());
        let staging = c
            .table("x_fls_flexera_fnms_inventory_import")
            .expect("staging");
        assert_eq!(staging.physical, "x_fls_flexera_fnms_inventory_import");
        assert!(staging.column("sys_import_state").is_some());
        assert_eq!(c.maps_for(&staging.name).count(), 6);
        let run = c.table("x_fls_flexera_fnms_import_run").expect("run");
        assert_eq!(run.number_prefix.as_deref(), Some("IRUN"));
    }

    #[test]
    fn bad_catalogs_are_refused() {
        let table = |extra: &str| {
            vec![(
                "tables/t.toml".to_owned(),
                format!(
                    "[[table]]\nname = \"t\"\n{extra}\n[table.columns]\nname = {{ type = \"string\" }}\n"
                ),
            )]
        };
        assert!(build(table("")).is_ok());
        assert!(build(table("extends = \"nope\"")).is_err());
        let bad_type = vec![(
            "tables/t.toml".to_owned(),
            "[[table]]\nname = \"t\"\n[table.columns]\nx = { type = \"blob\" }\n".to_owned(),
        )];
        assert!(build(bad_type).is_err());
        let injection = vec![(
            "tables/t.toml".to_owned(),
            "[[table]]\nname = \"t; drop table x\"\n".to_owned(),
        )];
        assert!(build(injection).is_err());
    }
}
