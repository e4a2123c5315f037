//! The web dashboard: a live kanban board in the browser, served at `/`.
//!
//! Static files (`crates/vapora-backend/dashboard/`: the page, its styles,
//! and its script as ES modules that import one another), compiled into
//! the binary so that running the backend is all it takes: no build step,
//! no Node.js, no CDN. The page signs in with an API key and then uses the
//! public API like any other client (REST, and the WebSocket event feed
//! resumed with `since`), so it can do nothing its key could not.
//!
//! Served with a strict Content-Security-Policy (scripts, styles and
//! connections to this origin only) and an `ETag`, so browsers revalidate
//! cheaply and pick up a new version at once. `VAPORA_DASHBOARD_DIR` serves
//! the files from disk instead, read on every request: edit, reload, no
//! rebuild.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// One embedded file: its name (served at `/dashboard/<name>`, the page
/// itself at `/`) and its text.
struct Asset {
    name: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        [$(Asset { name: $name, body: include_str!(concat!("../dashboard/", $name)) }),*]
    };
}

/// Every file of `crates/vapora-backend/dashboard/` (a test checks that
/// none is missing): the page, its styles, and the script's ES modules,
/// `app.js` first (the one the page loads; it imports the others).
const ASSETS: [Asset; 22] = assets![
    "index.html",
    "app.css",
    "app.js",
    "state.js",
    "dom.js",
    "format.js",
    "http.js",
    "toast.js",
    "session.js",
    "projects.js",
    "columns.js",
    "cards.js",
    "board.js",
    "output.js",
    "panel.js",
    "task-actions.js",
    "dialogs.js",
    "agents.js",
    "costs.js",
    "workflow-graph.js",
    "workflows.js",
    "live.js",
];
const INDEX: &str = "index.html";

/// Scripts, styles, images and connections from this origin only (the
/// WebSocket included); no framing, no inline code.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Bytes the dashboard adds to the binary.
pub fn embedded_size() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

type Source = Arc<Option<PathBuf>>;

/// The dashboard's routes; `dir` serves the files from disk instead.
pub fn routes<S: Clone + Send + Sync + 'static>(dir: Option<PathBuf>) -> Router<S> {
    let dir: Source = Arc::new(dir);
    Router::new()
        .route("/", get(page))
        .route("/dashboard/{name}", get(file))
        .with_state(dir)
}

async fn page(State(dir): State<Source>, request: HeaderMap) -> Response {
    serve(INDEX, &dir, &request).await
}

async fn file(State(dir): State<Source>, Path(name): Path<String>, request: HeaderMap) -> Response {
    // Only the dashboard's own files, from disk too: never a path.
    match ASSETS.iter().find(|a| a.name == name && a.name != INDEX) {
        Some(asset) => serve(asset.name, &dir, &request).await,
        None => crate::error::AppError::no_route(&format!("/dashboard/{name}")).into_response(),
    }
}

async fn serve(name: &'static str, dir: &Source, request: &HeaderMap) -> Response {
    let (body, etag) = match dir.as_deref() {
        Some(dir) => match tokio::fs::read_to_string(dir.join(name)).await {
            Ok(body) => {
                let etag = etag_of(&body);
                (body, etag)
            }
            Err(e) => {
                let message = format!("{}: {e}", dir.join(name).display());
                return (StatusCode::NOT_FOUND, message).into_response();
            }
        },
        None => {
            let index = ASSETS
                .iter()
                .position(|a| a.name == name)
                .expect("an embedded file");
            (ASSETS[index].body.to_owned(), embedded_etag(index).to_owned())
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|presented| presented.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, body).into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn embedded_etag(index: usize) -> &'static str {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    &ETAGS.get_or_init(|| ASSETS.iter().map(|a| etag_of(a.body)).collect())[index]
}

fn etag_of(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_adds_less_than_500_kb_to_the_binary() {
        let size = embedded_size();
        assert!(size > 0);
        assert!(size < 500 * 1024, "the dashboard's files take {size} bytes");
    }

    #[test]
    fn every_file_of_the_dashboard_folder_is_embedded_and_used() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard");
        let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "ASSETS must list the dashboard folder's files");
        for asset in ASSETS.iter().filter(|a| a.name != INDEX) {
            let served_as = format!("/dashboard/{}", asset.name);
            let relative = format!("./{}", asset.name);
            let used = ASSETS
                .iter()
                .any(|other| other.body.contains(&served_as) || other.body.contains(&relative));
            assert!(used, "nothing loads {}", asset.name);
        }
        for asset in &ASSETS {
            for remote in [
                "src=\"http",
                "href=\"http",
                "from 'http",
                "from \"http",
                "url(http",
            ] {
                assert!(
                    !asset.body.contains(remote),
                    "{} loads something from elsewhere",
                    asset.name
                );
            }
        }
    }
}
