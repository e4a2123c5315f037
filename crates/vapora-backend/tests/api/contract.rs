//! The published contract: the OpenAPI document and its docs page are
//! served without a key, describe every route with its errors and the
//! security scheme, and the page needs nothing from the internet.
//! (`scripts/test` also runs schemathesis against a started backend.)

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::spawn_app;

#[tokio::test]
async fn the_openapi_document_states_every_route_its_errors_and_the_key_scheme() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/api-docs/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "served without a key");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let scheme = &document["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");

    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            let id = operation["operationId"].as_str().unwrap();
            assert!(
                operation_ids.insert(id.to_owned()),
                "{what}: operationId {id} is unique"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|status| status.starts_with('2') || status == "101"),
                "{what} documents its success"
            );
            if path.starts_with("/api/v1/") {
                for status in ["401", "429", "503"] {
                    assert!(responses.contains_key(status), "{what} documents {status}");
                }
                assert!(operation.get("security").is_none(), "{what} needs the key");
            } else if path != "/metrics" {
                assert_eq!(operation["security"], serde_json::json!([{}]), "{what} is open");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{what} documents {status}");
                }
            }
        }
    }
    // 37 keyed operations, two probes and the metrics.
    assert_eq!(operation_ids.len(), 40);
    // A created project's and task's links name operations that exist.
    for path in ["/api/v1/projects", "/api/v1/tasks"] {
        let links = document["paths"][path]["post"]["responses"]["201"]["links"]
            .as_object()
            .unwrap();
        assert!(!links.is_empty());
        for link in links.values() {
            let target = link["operationId"].as_str().unwrap();
            assert!(operation_ids.contains(target), "{path} links to {target}");
        }
    }
    // Every error answer has the one error shape.
    let error = &document["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    app.stop().await;
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = spawn_app().await;
    let page = reqwest::get(app.url("/docs/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads nothing from elsewhere: {html}"
    );
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        let response = reqwest::get(app.url(&format!("/docs/{asset}"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let initializer = reqwest::get(app.url("/docs/swagger-initializer.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/api-docs/openapi.json"), "{initializer}");
    app.stop().await;
}
