//! Request and response bodies of the integration endpoint (wire-protocol §3).

use serde::{Deserialize, Serialize};

/// One transaction on the integration endpoint. Fields a type does not use are omitted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transaction<'a> {
    pub(crate) transaction_id: &'a str,
    pub(crate) transaction_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) import_run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) segment_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_segment: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) record_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<&'a str>,
}

impl<'a> Transaction<'a> {
    pub(crate) fn connection_test(transaction_id: &'a str) -> Self {
        Transaction {
            transaction_id,
            transaction_type: "connection_test",
            import_run_id: None,
            segment_number: None,
            last_segment: None,
            record_count: None,
            data: None,
        }
    }

    pub(crate) fn export_status(transaction_id: &'a str, import_run_id: &'a str) -> Self {
        Transaction {
            import_run_id: Some(import_run_id),
            transaction_type: "export_status",
            ..Transaction::connection_test(transaction_id)
        }
    }

    pub(crate) fn segment(
        transaction_id: &'a str,
        transaction_type: &'a str,
        import_run_id: &'a str,
        segment_number: u64,
        last_segment: bool,
        record_count: usize,
        data: &'a str,
    ) -> Self {
        Transaction {
            transaction_id,
            transaction_type,
            import_run_id: Some(import_run_id),
            segment_number: Some(segment_number),
            last_segment: Some(last_segment),
            record_count: Some(record_count),
            data: Some(data),
        }
    }
}

/// `{"result": {...}}` of an accepted request.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) result: TxResult,
}

/// The `result` object (wire-protocol §3.1–§3.4); unknown fields are ignored.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TxResult {
    pub(crate) return_code: i64,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) protocol_version: Option<i64>,
    #[serde(default)]
    pub(crate) import_run: Option<String>,
    #[serde(default)]
    pub(crate) import_transaction: Option<String>,
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) complete: Option<bool>,
    #[serde(default)]
    pub(crate) duplicate: Option<bool>,
    #[serde(default)]
    pub(crate) transactions: Option<serde_json::Value>,
}

/// The designed name of a return code (wire-protocol §3.1), for messages.
pub(crate) fn return_code_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        10 => "INVALID_REQUEST",
        11 => "UNKNOWN_TRANSACTION_TYPE",
        12 => "INVALID_PAYLOAD",
        20 => "IMPORT_IN_PROGRESS",
        21 => "RUN_CLOSED",
        22 => "UNKNOWN_RUN",
        30 => "SAM_PLUGIN_MISSING",
        40 => "NOT_READY",
        50 => "INTERNAL_ERROR",
        _ => "UNKNOWN_CODE",
    }
}

/// The return code that abandons the export at once (documented [EXP-22R2]).
pub(crate) const SAM_PLUGIN_MISSING: i64 = 30;
