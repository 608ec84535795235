//! The web UI: server-rendered pages at an instance's URLs, behind the same users, roles and
//! access rules as the APIs (see docs/emulator.md, "Web UI").
//!
//! - `session`: `login.do`, the `JSESSIONID` cookie, the form token
//! - `nav`: the navigator, drawn from the `sys_app_application` / `sys_app_module` records
//! - `list`: `/{table}_list.do` (columns, sorting, paging, an encoded-query filter)
//! - `form`: `/{table}.do?sys_id=…` (references as links, related lists, editing)
//! - `export`: `?CSV`, `?XML` and `?JSONv2` on either URL, for scripts (Basic authentication)
//! - `pages`: the dashboard, the app's Integration Properties and Generate Token pages, the
//!   emulator's controls
//!
//! Pages are askama templates (`snow-emulator/templates/`); the one stylesheet and the one
//! small script are embedded (`ui/assets/`).

mod export;
mod form;
mod list;
mod nav;
mod pages;
mod render;
mod session;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::http::{AppState, AuthUser};

pub use session::Sessions;

/// A query string as ordered pairs; `?CSV` is the pair ("CSV", "").
pub(crate) type Params = Vec<(String, String)>;

pub(crate) fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A URL query component, percent-encoded (RFC 3986 unreserved characters stay).
pub(crate) fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/navpage.do") }))
        .route("/ui/ui.css", get(css))
        .route("/ui/ui.js", get(js))
        .route("/{page}", get(page).post(page))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/ui.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/ui.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The pages the UI serves, by the last segment of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Page {
    Login,
    Logout,
    Dashboard,
    Controls,
    Properties,
    GenerateToken,
    List(String),
    Form(String),
}

impl Page {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "login.do" => Self::Login,
            "logout.do" => Self::Logout,
            "navpage.do" | "home.do" => Self::Dashboard,
            "emulator_controls.do" => Self::Controls,
            "system_properties_ui.do" => Self::Properties,
            "x_fls_flexera_fnms_generate_token.do" => Self::GenerateToken,
            _ => {
                let stem = name.strip_suffix(".do")?;
                match stem.strip_suffix("_list") {
                    Some(table) => Self::List(table.to_owned()),
                    None => Self::Form(stem.to_owned()),
                }
            }
        })
    }
}

/// The one entry point: login and logout need no caller; every other page does.
async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let Some(page) = Page::parse(&name) else {
        return ApiError::no_resource().into_response();
    };
    let (mut parts, body) = request.into_parts();
    let params = query_pairs(&parts);
    let post = parts.method == axum::http::Method::POST;
    let form = if post {
        match crate::http::read_body(body).await {
            Ok(bytes) => form_pairs(&bytes),
            Err(e) => return e.into_response(),
        }
    } else {
        Vec::new()
    };
    let response = match page {
        Page::Login if post => pages::login_submit(&state, &form).await,
        Page::Login => pages::login_form(&state, &parts, &params).await,
        Page::Logout => pages::logout(&state, &parts),
        page => {
            let export = export::Format::of(&params);
            let viewer = match Viewer::from_parts(&mut parts, &state, export.is_some()).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            if let Some(format) = export {
                return export::respond(&state, viewer, &page_table(&page), format, params).await;
            }
            if viewer.who.web_service_only {
                return pages::message(
                    StatusCode::FORBIDDEN,
                    "Web service access only",
                    "This user may call the instance's web services but not use its pages.",
                );
            }
            let request = Req {
                state: &state,
                viewer,
                params,
                form,
                post,
            };
            dispatch(page, request).await
        }
    };
    secure(response)
}

fn page_table(page: &Page) -> String {
    match page {
        Page::List(t) | Page::Form(t) => t.clone(),
        _ => String::new(),
    }
}

/// What a page handler gets.
pub(crate) struct Req<'a> {
    pub state: &'a AppState,
    pub viewer: Viewer,
    pub params: Params,
    /// The urlencoded body of a POST.
    pub form: Params,
    pub post: bool,
}

impl Req<'_> {
    /// The refusal page when a POST lacks the session's form token or comes without a
    /// session (Basic); None when it may go on.
    pub fn refused_post(&self) -> Option<Response> {
        let sent = param(&self.form, "sysparm_ck").unwrap_or_default();
        if self.viewer.session && !sent.is_empty() && sent == self.viewer.csrf {
            None
        } else {
            Some(pages::message(
                StatusCode::FORBIDDEN,
                "Invalid form token",
                "The form was not sent from this session's page; nothing was changed. Reload the page and try again.",
            ))
        }
    }
}

async fn dispatch(page: Page, r: Req<'_>) -> Response {
    match page {
        Page::Dashboard => pages::dashboard(r).await,
        Page::Controls => pages::controls(r).await,
        Page::Properties => pages::properties(r).await,
        Page::GenerateToken => pages::generate_token(r).await,
        Page::List(table) => list::page(r, table).await,
        Page::Form(table) => form::page(r, table).await,
        Page::Login | Page::Logout => ApiError::no_resource().into_response(),
    }
}

/// Pages may not be framed elsewhere and run only this instance's own script and style.
fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'self'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn query_pairs(parts: &Parts) -> Params {
    form_pairs(parts.uri.query().unwrap_or_default().as_bytes())
}

/// `application/x-www-form-urlencoded` pairs, as a query string or a form body.
fn form_pairs(bytes: &[u8]) -> Params {
    bytes
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let key = it.next().unwrap_or_default();
            let value = it.next().unwrap_or_default();
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(raw: &[u8]) -> String {
    let plus: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// The caller of a page: a session's user, or Basic credentials (URL exports and scripts).
pub(crate) struct Viewer {
    pub who: Principal,
    /// The session's form token ("" for Basic).
    pub csrf: String,
    /// True for a logged-in session (only sessions may change things through forms).
    pub session: bool,
}

impl Viewer {
    /// Without credentials a page redirects to `login.do` and comes back after it; an export
    /// answers 401 with a Basic challenge, as an instance does for URL exports.
    async fn from_parts(
        parts: &mut Parts,
        state: &AppState,
        export: bool,
    ) -> Result<Self, Response> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let AuthUser(who) = AuthUser::from_request_parts(parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(Self {
                who,
                csrf: String::new(),
                session: false,
            });
        }
        if let Some(active) = Self::session(parts, state)
            && let Some(who) = Self::load(state, active.user_name).await?
        {
            return Ok(Self {
                who,
                csrf: active.csrf,
                session: true,
            });
        }
        if export {
            return Err(ApiError::Unauthenticated.into_response());
        }
        let target = parts
            .uri
            .path_and_query()
            .map_or("/navpage.do", |p| p.as_str());
        Err(Redirect::to(&format!("/login.do?sysparm_goto={}", enc(target))).into_response())
    }

    fn session(parts: &Parts, state: &AppState) -> Option<session::Active> {
        let cookie = parts.headers.get(header::COOKIE)?.to_str().ok()?;
        let id = session::cookie_value(cookie)?;
        state.sessions.touch(id, state.store.clock().now())
    }

    async fn load(state: &AppState, user_name: String) -> Result<Option<Principal>, Response> {
        state
            .store
            .call(move |conn, catalog| crate::auth::user_by_name(conn, catalog, &user_name))
            .await
            .map_err(|e| ApiError::Internal(e).into_response())?
            .map_err(|e| ApiError::from(e).into_response())
    }
}

/// A rendered template, or the error page when rendering fails.
pub(crate) fn html(page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => ApiError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_map_to_pages_as_on_an_instance() {
        assert_eq!(
            Page::parse("cmdb_ci_computer_list.do"),
            Some(Page::List("cmdb_ci_computer".into()))
        );
        assert_eq!(
            Page::parse("ast_contract.do"),
            Some(Page::Form("ast_contract".into()))
        );
        assert_eq!(Page::parse("login.do"), Some(Page::Login));
        assert_eq!(Page::parse("navpage.do"), Some(Page::Dashboard));
        assert_eq!(Page::parse("favicon.ico"), None);
    }

    #[test]
    fn form_bodies_decode_plus_and_percent_and_keep_bare_keys() {
        let pairs = form_pairs(b"CSV&sysparm_query=name%3Dweb+01%5Evirtual%3Dtrue&x=");
        assert_eq!(pairs[0], ("CSV".into(), String::new()));
        assert_eq!(pairs[1].1, "name=web 01^virtual=true");
        assert_eq!(pairs[2], ("x".into(), String::new()));
        assert_eq!(enc("a b^c=d/é"), "a%20b%5Ec%3Dd%2F%C3%A9");
    }
}
