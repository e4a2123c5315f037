//! The API's published contract: an OpenAPI 3.1 document generated from the
//! handlers' `#[utoipa::path]` annotations and the types they take and
//! return, served at `/api-docs/openapi.json`, with Swagger UI at `/docs`
//! (its assets are compiled into the binary, so the page works offline).
//!
//! `api::router` registers every route through `utoipa_axum`'s
//! `OpenApiRouter`, so a route cannot be served without being in the
//! document. What each annotation would otherwise repeat is added here,
//! once: the bearer security scheme, and the error answers that any keyed
//! route, any route with parameters and any route with a body can give.
//! Links say where a created project's or task's id goes next, so clients
//! (and schemathesis's stateful run) can follow them.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::error::ErrorBody;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api-docs/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/docs";
/// The name of the security scheme in the document.
const SCHEME: &str = "api_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vapora API",
        description = "Projects, tasks and their board, agents, API keys and the live event feed of a Vapora backend. \
                       Every `/api/v1` route needs an API key: `Authorization: Bearer vk_…` (the WebSocket also takes it \
                       as an offered subprotocol). Errors are `{\"error\":{\"code\":…,\"message\":…}}`.",
    ),
    tags(
        (name = "projects", description = "Projects and their boards"),
        (name = "tasks", description = "Tasks, their lifecycle and history"),
        (name = "agents", description = "The agent registry (read-only)"),
        (name = "keys", description = "API keys: admins manage them; every key can read itself"),
        (name = "events", description = "The live event feed, over WebSocket or Server-Sent Events, resumable by sequence number"),
        (name = "workflows", description = "Workflow templates, their runs (one task per stage), and schedules"),
        (name = "budgets", description = "What the results cost per role, and the LLM budgets"),
        (name = "operations", description = "Probes and metrics, for orchestrators and scrapers"),
    ),
    components(schemas(ErrorBody)),
)]
struct ApiDoc;

/// The document's skeleton: info, tags and shared schemas, no paths yet.
pub fn skeleton() -> Document {
    ApiDoc::openapi()
}

/// Completes the document once the router has added its paths.
pub fn finish(mut doc: Document) -> Value {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("vk_<16 hex id>_<64 hex secret>")
                .description(Some(
                    "An API key from `POST /api/v1/keys` (or the first admin key in `data/admin.key`).",
                ))
                .build(),
        ),
    );
    for (name, response) in shared_responses() {
        components.responses.insert(name.to_owned(), RefOr::T(response));
    }
    doc.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
    for (path, item) in doc.paths.paths.iter_mut() {
        // `/metrics` takes a key when so configured.
        let keyed = path.starts_with("/api/v1/") || path == "/metrics";
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_shared_errors(operation, keyed);
        }
    }
    let mut doc = serde_json::to_value(doc).expect("the document serializes");
    add_links(&mut doc);
    doc
}

/// Where the id in a created resource's answer can be used next. Written
/// as JSON: utoipa 5.5 serializes its `Link` type with snake_case field
/// names (`operation_id`), which no OpenAPI reader understands.
fn add_links(doc: &mut Value) {
    let follow =
        |operation: &str| json!({ "operationId": operation, "parameters": { "id": "$response.body#/id" } });
    let mut project_links: Map<String, Value> =
        ["get_project", "update_project", "delete_project", "get_board"]
            .into_iter()
            .map(|operation| (operation.to_owned(), follow(operation)))
            .collect();
    // A task in the new project, so that the task routes reach real tasks.
    project_links.insert(
        "create_task".into(),
        json!({
            "operationId": "create_task",
            "requestBody": {
                "project_id": "$response.body#/id",
                "title": "linked task",
                "role": "developer",
                "dispatch": false,
            },
        }),
    );
    let task_links: Map<String, Value> = [
        "get_task",
        "update_task",
        "cancel_task",
        "retry_task",
        "get_task_history",
    ]
    .into_iter()
    .map(|operation| (operation.to_owned(), follow(operation)))
    .collect();
    for (path, links) in [("/api/v1/projects", project_links), ("/api/v1/tasks", task_links)] {
        if let Some(created) = doc["paths"][path]["post"]["responses"]["201"].as_object_mut() {
            created.insert("links".into(), Value::Object(links));
        }
    }
}

/// The router serving the document and Swagger UI.
pub fn docs<S: Clone + Send + Sync + 'static>(doc: Value) -> axum::Router<S> {
    // No validator badge: it would send the document to swagger.io.
    let config = Config::default().validator_url("none");
    SwaggerUi::new(DOCS_PATH)
        .external_url_unchecked(DOCUMENT_PATH, doc)
        .config(config)
        .into()
}

fn add_shared_errors(operation: &mut Operation, keyed: bool) {
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = operation.request_body.is_some();
    let mut shared = vec![("408", "RequestTimeout")];
    if has_parameters || has_body {
        shared.push(("400", "BadRequest"));
    }
    if has_body {
        shared.extend([
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
            ("422", "Unprocessable"),
        ]);
    }
    if keyed {
        shared.extend([
            ("401", "Unauthorized"),
            ("429", "RateLimited"),
            ("503", "Unavailable"),
        ]);
    }
    for (status, name) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}

fn shared_responses() -> [(&'static str, Response); 8] {
    [
        ("BadRequest", error("A malformed id, query, header or JSON body")),
        ("RequestTimeout", error("The request did not complete in time")),
        ("PayloadTooLarge", error("The body is larger than 1 MiB")),
        (
            "UnsupportedMediaType",
            error("The body is not `Content-Type: application/json`"),
        ),
        (
            "Unprocessable",
            error("Well-formed JSON that fails validation, or an `Idempotency-Key` reused with another body"),
        ),
        (
            "Unauthorized",
            with_header(
                error("No API key, or one that is malformed, unknown, expired or revoked"),
                "WWW-Authenticate",
                "`Bearer realm=\"vapora\"`, with `error=\"invalid_token\"` when a key was sent",
            ),
        ),
        (
            "RateLimited",
            with_header(
                error("The key is over its request rate or its WebSocket connections"),
                "Retry-After",
                "Seconds to wait",
            ),
        ),
        (
            "Unavailable",
            with_header(
                error("Storage is unavailable, the task queue is full, or the server is at a global cap"),
                "Retry-After",
                "Seconds to wait",
            ),
        ),
    ]
}

fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("Error"))),
        )
        .build()
}

fn with_header(mut response: Response, name: &str, description: &str) -> Response {
    let schema = ObjectBuilder::new().schema_type(Type::String).build();
    response.headers.insert(
        name.to_owned(),
        HeaderBuilder::new()
            .schema(schema)
            .description(Some(description))
            .build(),
    );
    response
}
