//! The three data types: their names on the wire and in the log, their XML field lists
//! (wire-protocol §6) and the queries that produce them from the FNMS schema.
//!
//! Each query selects exactly the record's fields, in the record's field order, ordered by
//! the FNMS keys so that a re-export produces the same segments. The differential variant
//! adds `UpdatedDate >= ?1` on the row that defines a record (see docs/exporter.md).

/// How a field's database value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldFormat {
    /// Text as stored; integers in decimal.
    Plain,
    /// A number with exactly two decimals (`Contract.Value`).
    Money,
}

/// One XML field of a record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) format: FieldFormat,
}

const fn plain(name: &'static str) -> Field {
    Field {
        name,
        format: FieldFormat::Plain,
    }
}

/// A data type of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    HardwareInventory,
    Contracts,
    InstalledApplications,
}

const INVENTORY_FIELDS: &[Field] = &[
    plain("ComputerID"),
    plain("ComputerName"),
    plain("Domain"),
    plain("DeviceType"),
    plain("OperatingSystem"),
    plain("ServicePack"),
    plain("Manufacturer"),
    plain("ModelNo"),
    plain("SerialNo"),
    plain("ChassisType"),
    plain("ComputerType"),
    plain("TotalMemory"),
    plain("TotalDiskSpace"),
    plain("NumberOfProcessors"),
    plain("NumberOfCores"),
    plain("ProcessorType"),
    plain("MaxClockSpeed"),
    plain("IPAddress"),
    plain("MACAddress"),
    plain("HostComputerID"),
    plain("HostComputerName"),
    plain("InventoryDate"),
    // Only on a removed computer's record (`true`); NULL, hence omitted, otherwise.
    plain("Removed"),
];

const CONTRACT_FIELDS: &[Field] = &[
    plain("ContractID"),
    plain("ContractNo"),
    plain("ContractName"),
    plain("ContractType"),
    plain("Vendor"),
    plain("StartDate"),
    plain("EndDate"),
    Field {
        name: "Value",
        format: FieldFormat::Money,
    },
    plain("Currency"),
    plain("Status"),
    plain("Description"),
    plain("ComputerID"),
];

const APPLICATION_FIELDS: &[Field] = &[
    plain("ComputerID"),
    plain("ApplicationID"),
    plain("DisplayName"),
    plain("Publisher"),
    plain("Product"),
    plain("Version"),
    plain("Edition"),
    plain("InstallDate"),
];

const INVENTORY_SELECT: &str = "\
SELECT c.ComplianceComputerID, c.ComputerName, c.Domain, t.DefaultValue, c.OperatingSystem,
       c.ServicePack, c.Manufacturer, c.ModelNo, c.SerialNo, c.ChassisType, c.ComputerType,
       c.TotalMemory, c.TotalDiskSpace, c.NumberOfProcessors, c.NumberOfCores, c.ProcessorType,
       c.MaxClockSpeed, c.IPAddress, c.MACAddress, c.HostComplianceComputerID, h.ComputerName,
       c.InventoryDate, NULL
FROM ComplianceComputer c
LEFT JOIN ComplianceComputerType t ON t.ComplianceComputerTypeID = c.ComplianceComputerTypeID
LEFT JOIN ComplianceComputer h ON h.ComplianceComputerID = c.HostComplianceComputerID";
// A VM is re-sent when its host changed (it carries HostComputerName).
const INVENTORY_CHANGED: &str = "WHERE c.UpdatedDate >= ?1 OR h.UpdatedDate >= ?1";
const INVENTORY_ORDER: &str = "ORDER BY c.ComplianceComputerID";

const CONTRACT_SELECT: &str = "\
SELECT c.ContractID, c.ContractNo, c.ContractName, c.ContractType, c.Vendor, c.StartDate,
       c.EndDate, c.Value, c.Currency, c.Status, c.Description, cc.ComplianceComputerID
FROM Contract c
LEFT JOIN ContractComplianceComputer cc ON cc.ContractID = c.ContractID";
// ?2 = 1: also contracts whose covered computers differ from those last exported.
const CONTRACT_CHANGED: &str = "\
WHERE c.UpdatedDate >= ?1 OR (?2 AND c.ContractID IN (
    SELECT ContractID FROM (SELECT ContractID, ComplianceComputerID FROM ContractComplianceComputer
                            EXCEPT
                            SELECT ContractID, ComplianceComputerID FROM ServiceNowExportedCoverage)
    UNION
    SELECT ContractID FROM (SELECT ContractID, ComplianceComputerID FROM ServiceNowExportedCoverage
                            EXCEPT
                            SELECT ContractID, ComplianceComputerID FROM ContractComplianceComputer)))";
const CONTRACT_ORDER: &str = "ORDER BY c.ContractID, cc.ComplianceComputerID";

const APPLICATION_SELECT: &str = "\
SELECT i.ComplianceComputerID, i.SoftwareTitleID, s.FullName, p.Name, s.ProductName, s.Version,
       s.Edition, i.InstallDate
FROM InstalledSoftware i
LEFT JOIN SoftwareTitle s ON s.SoftwareTitleID = i.SoftwareTitleID
LEFT JOIN Publisher p ON p.PublisherID = s.PublisherID";
// Titles whose name, publisher, version or edition differ from the bookkeeping's (a macro,
// so that `concat!` can place it twice in the query below).
macro_rules! changed_titles {
    () => {
        "SELECT t.SoftwareTitleID
        FROM SoftwareTitle t
        LEFT JOIN Publisher tp ON tp.PublisherID = t.PublisherID
        LEFT JOIN ServiceNowExportedTitle e ON e.SoftwareTitleID = t.SoftwareTitleID
        WHERE e.SoftwareTitleID IS NULL OR e.FullName IS NOT t.FullName
           OR e.Publisher IS NOT tp.Name OR e.Version IS NOT t.Version
           OR e.Edition IS NOT t.Edition"
    };
}
// ?2 = 1: also installations of applications whose title, publisher, version or edition
// differ from those last exported. The rows are chosen by rowid first (InstalledSoftware is a
// rowid table in fixtures/fnms/schema.sql), so that the `UpdatedDate` index serves the
// baseline: an `OR` across the joined query made SQLite scan every installation in key order
// (0.5 s for two million, to send twenty thousand). `UNION ALL`, as `IN` needs no duplicates
// removed: a `UNION` is merged in rowid order, and SQLite then scans for the first branch
// too. The `EXISTS` is constant, so the title branch's scan runs only when a title changed.
const APPLICATION_CHANGED: &str = concat!(
    "WHERE i.rowid IN (
    SELECT rowid FROM InstalledSoftware WHERE UpdatedDate >= ?1
    UNION ALL
    SELECT rowid FROM InstalledSoftware
    WHERE ?2 AND EXISTS (",
    changed_titles!(),
    ") AND SoftwareTitleID IN (",
    changed_titles!(),
    "))"
);
const APPLICATION_ORDER: &str = "ORDER BY i.ComplianceComputerID, i.SoftwareTitleID";

impl DataType {
    /// All data types, in the documented export order [EXP-KINSTA].
    pub(crate) const ALL: [DataType; 3] = [
        DataType::HardwareInventory,
        DataType::Contracts,
        DataType::InstalledApplications,
    ];

    /// Name in the log, as the documentation names it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            DataType::HardwareInventory => "hardware inventory",
            DataType::Contracts => "contracts",
            DataType::InstalledApplications => "installed applications",
        }
    }

    /// `transactionType` of its segments (documented [EXP-22R2]).
    pub(crate) fn transaction_type(self) -> &'static str {
        match self {
            DataType::HardwareInventory => "inventory_export",
            DataType::Contracts => "contract_export",
            DataType::InstalledApplications => "application_export",
        }
    }

    /// Key in `ServiceNowExportHistory.DataType`.
    pub(crate) fn history_key(self) -> &'static str {
        match self {
            DataType::HardwareInventory => "inventory",
            DataType::Contracts => "contract",
            DataType::InstalledApplications => "application",
        }
    }

    /// Root element of a segment.
    pub(crate) fn root_element(self) -> &'static str {
        match self {
            DataType::HardwareInventory => "Inventories",
            DataType::Contracts => "Contracts",
            DataType::InstalledApplications => "Applications",
        }
    }

    /// Element of one record.
    pub(crate) fn record_element(self) -> &'static str {
        match self {
            DataType::HardwareInventory => "Inventory",
            DataType::Contracts => "Contract",
            DataType::InstalledApplications => "Application",
        }
    }

    /// The record's fields, in order.
    pub(crate) fn fields(self) -> &'static [Field] {
        match self {
            DataType::HardwareInventory => INVENTORY_FIELDS,
            DataType::Contracts => CONTRACT_FIELDS,
            DataType::InstalledApplications => APPLICATION_FIELDS,
        }
    }

    /// Tables the export of this data type reads.
    pub(crate) fn tables(self) -> &'static [&'static str] {
        match self {
            DataType::HardwareInventory => &["ComplianceComputer", "ComplianceComputerType"],
            DataType::Contracts => &["Contract", "ContractComplianceComputer"],
            DataType::InstalledApplications => &["InstalledSoftware", "SoftwareTitle", "Publisher"],
        }
    }

    /// The query; with `differential` it takes the baseline as parameter `?1` and, as `?2`,
    /// whether to compare with the exporter's bookkeeping (1) or not (0).
    pub(crate) fn query(self, differential: bool) -> String {
        let (select, changed, order) = match self {
            DataType::HardwareInventory => (INVENTORY_SELECT, INVENTORY_CHANGED, INVENTORY_ORDER),
            DataType::Contracts => (CONTRACT_SELECT, CONTRACT_CHANGED, CONTRACT_ORDER),
            DataType::InstalledApplications => {
                (APPLICATION_SELECT, APPLICATION_CHANGED, APPLICATION_ORDER)
            }
        };
        if differential {
            format!("{select}\n{changed}\n{order}")
        } else {
            format!("{select}\n{order}")
        }
    }
}
