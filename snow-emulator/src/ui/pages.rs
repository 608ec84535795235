//! The pages that are not a table's list or form: logging in and out, the dashboard, the
//! app's Integration Properties and Generate Token pages, the emulator's controls, and the
//! error page. The dashboard and the run progress read the app's records through its typed
//! views (`crate::app::views`).

use askama::Template;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::Connection;

use super::form::Choice;
use super::list::refusal;
use super::render::{self, Chrome};
use super::session::{self, set_cookie};
use super::{Params, Req, Viewer, html, param};
use crate::acl::{self, Operation, Resource};
use crate::app::views::{Run, State};
use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::http::AppState;
use crate::store::{self, Fields, Op};

// ---------------------------------------------------------------- errors and messages

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Chrome,
    heading: String,
    message: String,
}

/// A page with one message and no navigator (the caller may not be known).
pub fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    let page = MessagePage {
        chrome: Chrome {
            title: heading.to_owned(),
            user_display: String::new(),
            csrf: String::new(),
            menus: Vec::new(),
            notice: None,
        },
        heading: heading.to_owned(),
        message: text.to_owned(),
    };
    (status, html(&page)).into_response()
}

/// An API error as a page: refusals and missing records as 403 / 404 pages with the
/// reason, anything else in ServiceNow's error envelope.
pub fn api_error(e: ApiError) -> Response {
    match refusal(&e) {
        Some((status, heading)) => {
            let text = match &e {
                ApiError::NotFound { message, .. } => message.clone(),
                _ => "Your roles do not allow this. Ask an administrator for a role that may read or change these records.".into(),
            };
            message(status, heading, &text)
        }
        None => e.into_response(),
    }
}

// ---------------------------------------------------------------- login and logout

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    goto: String,
    user_name: String,
}

/// Only paths on this instance are followed after logging in.
fn local_goto(goto: Option<&str>) -> String {
    match goto {
        Some(g) if g.starts_with('/') && !g.starts_with("//") && !g.contains('\\') => g.to_owned(),
        _ => "/navpage.do".to_owned(),
    }
}

pub async fn login_form(state: &AppState, parts: &Parts, params: &Params) -> Response {
    let goto = local_goto(param(params, "sysparm_goto"));
    let logged_in = parts
        .headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(session::cookie_value)
        .and_then(|id| state.sessions.touch(id, state.store.clock().now()));
    if logged_in.is_some() {
        return Redirect::to(&goto).into_response();
    }
    html(&LoginPage {
        error: None,
        goto,
        user_name: String::new(),
    })
}

pub async fn login_submit(state: &AppState, form: &Params) -> Response {
    let user = param(form, "user_name")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let password = param(form, "user_password").unwrap_or_default().to_owned();
    let goto = local_goto(param(form, "sysparm_goto"));
    let name = user.clone();
    let checked = state
        .store
        .call(move |conn, catalog| crate::auth::basic(conn, catalog, &name, &password))
        .await;
    let error = match checked {
        Ok(Ok(Some(who))) if who.web_service_only => {
            "This user has web service access only and cannot log in to the UI."
        }
        Ok(Ok(Some(who))) => {
            let id = state
                .sessions
                .open(&who.user_name, state.store.clock().now());
            tracing::info!(user = %who.user_name, "logged in");
            let mut response = Redirect::to(&goto).into_response();
            if let Ok(v) = set_cookie(&id).parse() {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            return response;
        }
        Ok(Ok(None)) => "User name or password invalid",
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => return ApiError::Internal(e).into_response(),
    };
    let page = LoginPage {
        error: Some(error.to_owned()),
        goto,
        user_name: user,
    };
    (StatusCode::UNAUTHORIZED, html(&page)).into_response()
}

/// Ends the session (GET as the platform's logout link, or POST from the banner).
pub fn logout(state: &AppState, parts: &Parts) -> Response {
    if let Some(id) = parts
        .headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(session::cookie_value)
    {
        state.sessions.close(id);
    }
    let mut response = Redirect::to("/login.do").into_response();
    if let Ok(v) = set_cookie("").parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

// ---------------------------------------------------------------- run progress, dashboard

/// How far an Import Run is: transactions finished out of the segments it has (or expects).
pub struct Progress {
    pub state: String,
    pub state_label: String,
    pub done: i64,
    pub total: i64,
    pub summary: String,
}

fn transactions_done(conn: &Connection, catalog: &Catalog, run: &Run) -> Result<i64, ApiError> {
    let Some(table) = catalog.table(crate::app::TRANSACTION_TABLE) else {
        return Ok(0);
    };
    let mut q = store::EncodedQuery::default();
    q.and("import_run", Op::Eq, &run.sys_id);
    q.and("state", Op::In, "succeeded,failed");
    Ok(store::count(conn, Some(catalog), table, &q)?)
}

fn progress_of(conn: &Connection, catalog: &Catalog, run: &Run) -> Result<Progress, ApiError> {
    let done = transactions_done(conn, catalog, run)?;
    let total = run
        .segments_expected
        .unwrap_or(run.transactions_received)
        .max(done);
    let expecting = if run.segments_expected.is_some() {
        ""
    } else {
        " so far"
    };
    Ok(Progress {
        state: run.state.as_str().to_owned(),
        state_label: state_label(run.state),
        summary: format!(
            "{done} of {total} segments processed{expecting}, {} records received",
            run.records_received
        ),
        done,
        total: total.max(1),
    })
}

fn state_label(s: State) -> String {
    let v = s.as_str();
    let mut c = v.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The progress banner of an Import Run's form (None for every other table).
pub fn run_progress(
    conn: &Connection,
    catalog: &Catalog,
    table: &str,
    record: &Fields,
) -> Result<Option<Progress>, ApiError> {
    if table != crate::app::RUN_TABLE {
        return Ok(None);
    }
    let run = Run::from_fields(record)?;
    Ok(Some(progress_of(conn, catalog, &run)?))
}

pub struct RunLine {
    pub href: String,
    pub number: String,
    pub import_type: String,
    pub state: String,
    pub state_label: String,
    pub done: i64,
    pub total: i64,
    pub segments: String,
    pub records: i64,
    pub started: String,
    pub duration: String,
    pub message: String,
}

pub struct Card {
    pub import_type: String,
    pub run: Option<RunLine>,
}

pub struct TargetCount {
    pub label: String,
    pub href: String,
    pub count: i64,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    cards: Vec<Card>,
    recent: Vec<RunLine>,
    targets: Vec<TargetCount>,
}

fn seconds_between(from: &str, to: &str) -> Option<i64> {
    let parse = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok();
    Some((parse(to)? - parse(from)?).num_seconds())
}

fn duration(record: &Fields, state: State) -> String {
    let started = record.get("started").map_or("", String::as_str);
    let end = match record.get("completed").filter(|c| !c.is_empty()) {
        Some(c) => c.clone(),
        None if state.is_terminal() => return String::new(),
        None => crate::clock::now_string(),
    };
    match seconds_between(started, &end) {
        Some(s) if state.is_terminal() => format!("{s} s"),
        Some(s) => format!("{s} s (running)"),
        None => String::new(),
    }
}

fn run_line(conn: &Connection, catalog: &Catalog, record: &Fields) -> Result<RunLine, ApiError> {
    let run = Run::from_fields(record)?;
    let p = progress_of(conn, catalog, &run)?;
    let text = |c: &str| record.get(c).cloned().unwrap_or_default();
    let import_type = catalog
        .table(crate::app::RUN_TABLE)
        .and_then(|t| t.column("import_type"))
        .and_then(|c| c.choice_label(&run.import_type))
        .unwrap_or(&run.import_type)
        .to_owned();
    Ok(RunLine {
        href: render::form_href(crate::app::RUN_TABLE, &run.sys_id),
        segments: format!("{} / {}", p.done, p.total),
        duration: duration(record, run.state),
        records: run.records_received,
        started: text("started"),
        message: text("message"),
        number: run.number,
        import_type,
        state: p.state,
        state_label: p.state_label,
        done: p.done,
        total: p.total,
    })
}

fn runs(
    conn: &Connection,
    catalog: &Catalog,
    query: &str,
    limit: i64,
) -> Result<Vec<RunLine>, ApiError> {
    let Some(table) = catalog.table(crate::app::RUN_TABLE) else {
        return Ok(Vec::new());
    };
    let q = store::parse_encoded_query(query);
    store::find(conn, table, &q, limit, 0)?
        .iter()
        .map(|r| run_line(conn, catalog, r))
        .collect()
}

fn cards(conn: &Connection, catalog: &Catalog) -> Result<Vec<Card>, ApiError> {
    let types = catalog
        .table(crate::app::RUN_TABLE)
        .and_then(|t| t.column("import_type"))
        .map(|c| c.choices.clone())
        .unwrap_or_default();
    types
        .into_iter()
        .map(|t| {
            let query = format!(
                "import_type={}^ORDERBYDESCsys_created_on^ORDERBYDESCnumber",
                t.value
            );
            Ok(Card {
                import_type: t.label,
                run: runs(conn, catalog, &query, 1)?.into_iter().next(),
            })
        })
        .collect()
}

/// The tables the transform maps write, with their counts (those the user may read).
fn targets(
    conn: &Connection,
    catalog: &Catalog,
    viewer: &Viewer,
) -> Result<Vec<TargetCount>, ApiError> {
    let mut names: Vec<&str> = catalog
        .maps
        .iter()
        .filter(|m| m.active)
        .map(|m| m.target_table.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let Some(table) = catalog.table(name) else {
            continue;
        };
        if !acl::check(catalog, &viewer.who, Operation::Read, Resource::Table(name)) {
            continue;
        }
        out.push(TargetCount {
            label: table.label.clone(),
            href: render::list_href(name, ""),
            count: store::count(conn, Some(catalog), table, &store::EncodedQuery::default())?,
        });
    }
    Ok(out)
}

pub async fn dashboard(r: Req<'_>) -> Response {
    let Req { state, viewer, .. } = r;
    let built = state
        .store
        .call(move |conn, catalog| -> Result<DashboardPage, ApiError> {
            acl_read(catalog, &viewer, crate::app::RUN_TABLE)?;
            Ok(DashboardPage {
                chrome: Chrome::new(conn, catalog, &viewer, "Dashboard", "/navpage.do")?,
                cards: cards(conn, catalog)?,
                recent: runs(
                    conn,
                    catalog,
                    "ORDERBYDESCsys_created_on^ORDERBYDESCnumber",
                    10,
                )?,
                targets: targets(conn, catalog, &viewer)?,
            })
        })
        .await;
    finish(built)
}

fn acl_read(catalog: &Catalog, viewer: &Viewer, table: &str) -> Result<(), ApiError> {
    crate::http::access::authorize(
        catalog,
        &viewer.who,
        Operation::Read,
        Resource::Table(table),
    )
}

fn finish<T: Template>(built: anyhow::Result<Result<T, ApiError>>) -> Response {
    match built {
        Ok(Ok(page)) => html(&page),
        Ok(Err(e)) => api_error(e),
        Err(e) => api_error(ApiError::Internal(e)),
    }
}

// ---------------------------------------------------------------- integration properties

pub struct Property {
    pub name: String,
    pub value: String,
    pub description: String,
    pub options: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "properties.html")]
struct PropertiesPage {
    chrome: Chrome,
    heading: String,
    prefix: String,
    properties: Vec<Property>,
    editable: bool,
}

/// A property's choices: `true | false` for booleans, else its `choices` column
/// (`Label=value,…`, or bare values).
fn property_options(record: &Fields) -> Vec<Choice> {
    let text = |c: &str| record.get(c).map_or("", String::as_str);
    let value = text("value");
    let pairs: Vec<(String, String)> = match text("type") {
        "boolean" => vec![
            ("true".into(), "true".into()),
            ("false".into(), "false".into()),
        ],
        _ => text("choices")
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(|c| match c.split_once('=') {
                Some((label, v)) => (v.trim().to_owned(), label.trim().to_owned()),
                None => (c.trim().to_owned(), c.trim().to_owned()),
            })
            .collect(),
    };
    pairs
        .into_iter()
        .map(|(v, label)| Choice {
            selected: v == value,
            value: v,
            label,
        })
        .collect()
}

fn properties_of(
    conn: &Connection,
    catalog: &Catalog,
    prefix: &str,
) -> Result<Vec<Fields>, ApiError> {
    let table = catalog
        .table("sys_properties")
        .ok_or_else(ApiError::no_resource)?;
    let mut q = store::parse_encoded_query("ORDERBYname");
    q.and("name", Op::StartsWith, prefix);
    Ok(store::find(conn, table, &q, 1000, 0)?)
}

pub async fn properties(r: Req<'_>) -> Response {
    if r.post
        && let Some(refused) = r.refused_post()
    {
        return refused;
    }
    let prefix = param(&r.params, "sysparm_prefix")
        .unwrap_or("x_fls_flexera_fnms.")
        .to_owned();
    let heading = param(&r.params, "sysparm_title")
        .unwrap_or("Integration Properties")
        .to_owned();
    let Req {
        state,
        viewer,
        form,
        post,
        ..
    } = r;
    let built = state
        .store
        .call(move |conn, catalog| -> Result<PropertiesPage, ApiError> {
            acl_read(catalog, &viewer, "sys_properties")?;
            if post {
                save_properties(conn, catalog, &viewer, &prefix, &form)?;
            }
            let editable = viewer.session
                && acl::check(
                    catalog,
                    &viewer.who,
                    Operation::Write,
                    Resource::Table("sys_properties"),
                );
            let properties = properties_of(conn, catalog, &prefix)?
                .into_iter()
                .map(|f| Property {
                    options: property_options(&f),
                    name: f.get("name").cloned().unwrap_or_default(),
                    value: f.get("value").cloned().unwrap_or_default(),
                    description: f.get("description").cloned().unwrap_or_default(),
                })
                .collect();
            let current = format!(
                "/system_properties_ui.do?sysparm_title={}&sysparm_prefix={}",
                super::enc(&heading),
                super::enc(&prefix)
            );
            let mut chrome = Chrome::new(conn, catalog, &viewer, &heading, &current)?;
            if post {
                chrome.notice = Some("Properties saved; they take effect at once.".into());
            }
            Ok(PropertiesPage {
                chrome,
                heading,
                prefix,
                properties,
                editable,
            })
        })
        .await;
    finish(built)
}

/// Writes each sent property under `prefix` whose value changed (one transaction).
fn save_properties(
    conn: &Connection,
    catalog: &Catalog,
    viewer: &Viewer,
    prefix: &str,
    form: &Params,
) -> Result<(), ApiError> {
    crate::http::access::authorize(
        catalog,
        &viewer.who,
        Operation::Write,
        Resource::Table("sys_properties"),
    )?;
    let table = catalog
        .table("sys_properties")
        .ok_or_else(ApiError::no_resource)?;
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| ApiError::Internal(e.into()))?;
    for record in properties_of(&tx, catalog, prefix)? {
        let name = record.get("name").map_or("", String::as_str);
        let Some(sent) = param(form, name) else {
            continue;
        };
        if record.get("value").map(String::as_str) == Some(sent) {
            continue;
        }
        let values: Fields = [("value".to_owned(), sent.to_owned())]
            .into_iter()
            .collect();
        let id = record.get("sys_id").map_or("", String::as_str);
        store::update(&tx, table, id, &values, &viewer.who.user_name)?;
        tracing::info!(property = name, value = sent, user = %viewer.who.user_name, "property changed");
    }
    tx.commit().map_err(|e| ApiError::Internal(e.into()))?;
    Ok(())
}

// ---------------------------------------------------------------- generate token

pub struct Issued {
    pub user: String,
    pub value: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    chrome: Chrome,
    token: Option<Issued>,
    error: Option<String>,
    user_name: String,
}

/// The app's Generate Token page (administrators): the integration user's id and password
/// give the refresh token the export utility takes, as the app's endpoint does.
pub async fn generate_token(r: Req<'_>) -> Response {
    if r.post
        && let Some(refused) = r.refused_post()
    {
        return refused;
    }
    let Req {
        state,
        viewer,
        form,
        post,
        ..
    } = r;
    let (client_id, secret) = (
        state.config.oauth_client_id.clone(),
        state.config.oauth_client_secret.clone(),
    );
    let built = state
        .store
        .call(move |conn, catalog| -> Result<TokenPage, ApiError> {
            if !viewer.who.admin {
                return Err(ApiError::Forbidden);
            }
            let user = param(&form, "user_name").map_or_else(
                || crate::INTEGRATION_USER.to_owned(),
                |u| u.trim().to_owned(),
            );
            let (mut token, mut error) = (None, None);
            if post {
                let password = param(&form, "password").unwrap_or_default();
                match crate::auth::password_grant(
                    conn, catalog, &client_id, &secret, &user, password,
                )? {
                    Some(t) if t.refresh_token.is_some() => {
                        let value = t.refresh_token.unwrap_or_default();
                        let expires = crate::auth::refresh_expiry(conn, catalog, &value)?;
                        tracing::info!(user = %user, "refresh token generated in the UI");
                        token = Some(Issued {
                            user: user.clone(),
                            value,
                            expires,
                        });
                    }
                    _ => {
                        error = Some(
                            "Token generation failed: check the user name and password.".to_owned(),
                        )
                    }
                }
            }
            let current = "/x_fls_flexera_fnms_generate_token.do";
            Ok(TokenPage {
                chrome: Chrome::new(conn, catalog, &viewer, "Generate Token", current)?,
                token,
                error,
                user_name: user,
            })
        })
        .await;
    finish(built)
}

// ---------------------------------------------------------------- emulator controls

#[derive(Template)]
#[template(path = "controls.html")]
struct ControlsPage {
    chrome: Chrome,
    paused: bool,
    queued: i64,
    now: String,
    offset: i64,
    faults: String,
}

pub async fn controls(r: Req<'_>) -> Response {
    if !r.viewer.who.admin {
        return api_error(ApiError::Forbidden);
    }
    let mut notice = None;
    if r.post {
        if let Some(refused) = r.refused_post() {
            return refused;
        }
        match control_action(r.state, &r.form).await {
            Ok(done) => notice = Some(done),
            Err(e) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "The control failed",
                    &format!("{e}"),
                );
            }
        }
    }
    let Req { state, viewer, .. } = r;
    let (paused, clock) = (state.worker.paused(), state.store.clock().clone());
    let faults = serde_json::to_string_pretty(&state.faults.describe()).unwrap_or_default();
    let built = state
        .store
        .call(move |conn, catalog| -> Result<ControlsPage, ApiError> {
            let mut chrome = Chrome::new(
                conn,
                catalog,
                &viewer,
                "Emulator controls",
                "/emulator_controls.do",
            )?;
            chrome.notice = notice;
            Ok(ControlsPage {
                chrome,
                paused,
                queued: queued(conn, catalog)?,
                now: clock
                    .now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                offset: clock.offset_seconds(),
                faults,
            })
        })
        .await;
    finish(built)
}

fn queued(conn: &Connection, catalog: &Catalog) -> Result<i64, ApiError> {
    let Some(table) = catalog.table(crate::app::TRANSACTION_TABLE) else {
        return Ok(0);
    };
    let mut q = store::EncodedQuery::default();
    q.and("state", Op::In, "new,waiting,processing");
    Ok(store::count(conn, Some(catalog), table, &q)?)
}

/// One control button; returns what it did.
async fn control_action(state: &AppState, form: &Params) -> Result<String, ApiError> {
    let invalid = |d: &str| ApiError::bad_request("Invalid control", d.to_owned());
    Ok(match param(form, "action").unwrap_or_default() {
        "pause" => {
            state.worker.set_paused(true);
            "Worker paused".into()
        }
        "resume" => {
            state.worker.set_paused(false);
            "Worker resumed".into()
        }
        "step" if state.worker.paused() => {
            let answer = crate::http::emulator::step(state).await?;
            match answer.0.get("transaction").and_then(|t| t.get("number")) {
                Some(n) => format!("Processed {}", n.as_str().unwrap_or_default()),
                None => "No transaction was waiting".into(),
            }
        }
        "advance" => {
            let seconds: i64 = param(form, "advance_seconds")
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| invalid("advance_seconds must be an integer"))?;
            state.store.clock().advance(seconds);
            format!("Clock advanced by {seconds} s")
        }
        "clock_reset" => {
            state.store.clock().reset();
            "Clock back to real time".into()
        }
        "faults" => {
            let text = param(form, "faults").unwrap_or_default();
            let plan: crate::faults::Plan = serde_json::from_str(text)
                .map_err(|e| ApiError::bad_request("Invalid fault plan", e.to_string()))?;
            state
                .faults
                .install(plan)
                .map_err(|e| ApiError::bad_request("Invalid fault plan", e))?;
            state.worker.wake();
            "Fault plan installed".into()
        }
        "faults_clear" => {
            state.faults.clear();
            state.worker.wake();
            "Faults cleared".into()
        }
        "reset" => {
            crate::http::emulator::reset_instance(state).await?;
            "Instance reset".into()
        }
        other => return Err(invalid(&format!("unknown action {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(
            local_goto(Some("/cmdb_ci_computer_list.do?x=1")),
            "/cmdb_ci_computer_list.do?x=1"
        );
        assert_eq!(local_goto(Some("//evil.example/")), "/navpage.do");
        assert_eq!(local_goto(Some("https://evil.example/")), "/navpage.do");
        assert_eq!(local_goto(None), "/navpage.do");
    }

    #[test]
    fn property_choices_read_labels_and_booleans() {
        let record: Fields = [
            ("type", "choicelist"),
            ("value", "sam"),
            ("choices", "Decide automatically=auto,Use SAM tables=sam"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let options = property_options(&record);
        assert_eq!(options.len(), 2);
        assert!(options[1].selected && options[1].label == "Use SAM tables");
        let boolean: Fields = [
            ("type".to_owned(), "boolean".to_owned()),
            ("value".to_owned(), "false".to_owned()),
        ]
        .into_iter()
        .collect();
        assert!(property_options(&boolean)[1].selected);
    }
}
