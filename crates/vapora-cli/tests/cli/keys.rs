//! `vapora keys …` and `vapora agents`: what an admin manages and sees.

use crate::support::spawn_backend;

#[tokio::test]
async fn keys_are_issued_listed_used_and_revoked() {
    let app = spawn_backend().await;
    let mine = app.project("mine").await;
    app.project("theirs").await;

    let issued = app
        .vapora(&[
            "--json",
            "keys",
            "create",
            "--name",
            "ci",
            "--role",
            "member",
            "--project",
            &mine,
        ])
        .await
        .json();
    let key = issued["key"].as_str().expect("the secret, this once");
    let id = issued["id"].as_str().unwrap();
    assert!(key.starts_with(&format!("vk_{id}_")), "{issued}");

    let listed = app.vapora(&["keys", "list"]).await;
    let row = listed
        .ok()
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert!(row.contains("member") && row.contains(&mine), "{row}");

    // The member key sees its project only, and knows who it is.
    let seen = app
        .vapora(&["--json", "project", "list", "--key", key])
        .await
        .json();
    assert_eq!(seen["items"].as_array().unwrap().len(), 1);
    assert_eq!(seen["items"][0]["id"], mine.as_str());
    let me = app.vapora(&["keys", "me", "--key", key]).await;
    assert!(me.ok().contains("member"), "{me:?}");

    let revoked = app.vapora(&["--json", "keys", "revoke", id]).await.json();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let refused = app.vapora(&["project", "list", "--key", key]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains("revoked"), "{refused:?}");
}

#[tokio::test]
async fn agents_are_listed() {
    let app = spawn_backend().await;
    let table = app.vapora(&["agents"]).await;
    let out = table.ok();
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("developer-") && l.contains("idle")),
        "{out}"
    );
    let page = app.vapora(&["--json", "agents", "--limit", "1"]).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next_cursor"].is_string(), "{page}");
}
