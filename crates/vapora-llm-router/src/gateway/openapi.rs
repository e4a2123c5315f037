//! The gateway's published contract: an OpenAPI 3.1 document generated from
//! the handlers' `#[utoipa::path]` annotations, served at
//! `/api-docs/openapi.json`, with Swagger UI (assets compiled in) at `/docs`.
//!
//! `gateway::app` registers its routes through `utoipa_axum`, so what is
//! served is what is documented. The answers every keyed route can give
//! (401 for a missing or wrong key; 400 and 413 for a bad body) and the
//! bearer security scheme are added here, once.

use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa_swagger_ui::{Config, SwaggerUi};

use super::error::ErrorBody;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api-docs/openapi.json";
const SCHEME: &str = "gateway_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vapora LLM gateway",
        description = "An OpenAI-compatible chat completions API over Vapora's LLM router: routes with fallback, \
                       budgets and cost tracking. Send a configured gateway key as `Authorization: Bearer KEY`, as \
                       the OpenAI SDKs do with their `api_key`. Errors are OpenAI's error objects.",
    ),
    tags(
        (name = "chat", description = "Completions and the models that serve them"),
        (name = "budgets", description = "What the caller may still spend"),
        (name = "operations", description = "Probes and metrics"),
    ),
    components(schemas(ErrorBody)),
)]
struct GatewayDoc;

/// The document's skeleton: info, tags and shared schemas, no paths yet.
pub fn skeleton() -> Document {
    GatewayDoc::openapi()
}

/// Completes the document once the router has added its paths; `models`
/// are the routes and targets this gateway serves, the only values of a
/// request's `model` it accepts.
pub fn finish(doc: &mut Document, models: Vec<String>) {
    let components = doc.components.get_or_insert_with(Default::default);
    if let Some(RefOr::T(Schema::Object(request))) = components.schemas.get_mut("ChatCompletionRequest")
        && let Some(RefOr::T(Schema::Object(model))) = request.properties.get_mut("model")
    {
        model.enum_values = Some(models.into_iter().map(Into::into).collect());
    }
    components.add_security_scheme(
        SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A key whose SHA-256 is in the gateway's configuration (`[gateway.keys.NAME]`).",
                ))
                .build(),
        ),
    );
    for (name, response) in [
        (
            "BadRequest",
            error("A malformed body, or one the gateway cannot serve"),
        ),
        ("PayloadTooLarge", error("The body is larger than 4 MiB")),
        (
            "Unauthorized",
            error("No key, or one the gateway does not know (`invalid_api_key`)"),
        ),
    ] {
        components.responses.insert(name.to_owned(), RefOr::T(response));
    }
    doc.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
    for item in doc.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            add_shared_errors(operation);
        }
    }
}

/// The router serving the document and Swagger UI.
pub fn docs<S: Clone + Send + Sync + 'static>(doc: Document) -> axum::Router<S> {
    // No validator badge: it would send the document to swagger.io.
    SwaggerUi::new("/docs")
        .url(DOCUMENT_PATH, doc)
        .config(Config::default().validator_url("none"))
        .into()
}

fn add_shared_errors(operation: &mut Operation) {
    // Operations that need no key say so with an empty requirement.
    if operation.security.is_some() {
        return;
    }
    let mut shared = vec![("401", "Unauthorized")];
    if operation.request_body.is_some() {
        shared.extend([("400", "BadRequest"), ("413", "PayloadTooLarge")]);
    }
    for (status, name) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
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
