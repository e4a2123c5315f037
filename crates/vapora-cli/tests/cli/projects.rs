//! `vapora project …`, in tables and in JSON.

use crate::support::spawn_backend;

#[tokio::test]
async fn projects_are_created_listed_shown_and_deleted() {
    let app = spawn_backend().await;

    let created = app
        .vapora(&[
            "--json",
            "project",
            "create",
            "compiler",
            "--description",
            "A toy compiler",
        ])
        .await
        .json();
    assert_eq!(created["name"], "compiler");
    assert_eq!(created["description"], "A toy compiler");
    let id = created["id"].as_str().unwrap();

    // Human output: a table with a header and the project's row.
    let list = app.vapora(&["project", "list"]).await;
    let out = list.ok();
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(id) && l.contains("compiler")),
        "{out}"
    );

    let listed = app.vapora(&["project", "list", "--json"]).await.json();
    assert_eq!(listed["items"][0]["id"], id);
    assert!(listed["next_cursor"].is_null());

    let shown = app.vapora(&["project", "show", id]).await;
    assert!(shown.ok().contains("A toy compiler"), "{shown:?}");
    assert_eq!(
        app.vapora(&["project", "show", id, "--json"]).await.json()["id"],
        id
    );

    let board = app.vapora(&["project", "board", id]).await;
    assert!(board.ok().contains("todo 0"), "{board:?}");

    let deleted = app.vapora(&["project", "delete", id]).await;
    assert_eq!(deleted.ok(), "");
    assert!(deleted.stderr.contains("deleted project"), "{deleted:?}");

    // Gone: the server's 404 message, exit 1.
    let missing = app.vapora(&["project", "show", id]).await;
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(
        missing.stderr.contains(&format!("project {id} not found")),
        "{missing:?}"
    );
    assert!(missing.stderr.contains("404"), "{missing:?}");
}

#[tokio::test]
async fn lists_page_with_a_cursor() {
    let app = spawn_backend().await;
    for name in ["a", "b", "c"] {
        app.project(name).await;
    }
    let first = app.vapora(&["project", "list", "--limit", "2"]).await;
    assert_eq!(first.ok().lines().count(), 3, "header and two rows: {first:?}");
    let cursor = first
        .stderr
        .split("--cursor ")
        .nth(1)
        .map(|c| c.trim().trim_end_matches(')').to_owned())
        .unwrap_or_else(|| panic!("a next-page hint: {first:?}"));
    let rest = app
        .vapora(&["--json", "project", "list", "--cursor", &cursor])
        .await
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["name"], "c");
}
