//! What goes wrong is said plainly: the server's message, or which URL
//! could not be reached; and completions need no server at all.

use crate::support::{run, spawn_backend};

#[tokio::test]
async fn a_wrong_key_prints_the_servers_message() {
    let app = spawn_backend().await;
    let unknown = format!("vk_{}_{}", "0".repeat(16), "0".repeat(64));
    let run = app.vapora(&["project", "list", "--key", &unknown]).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("unknown API key"), "{run:#?}");
    assert!(run.stderr.contains("401"), "{run:#?}");

    let malformed = app.vapora(&["project", "list", "--key", "nonsense"]).await;
    assert_eq!(malformed.code, Some(1), "{malformed:#?}");
    assert!(malformed.stderr.contains("error:"), "{malformed:#?}");

    let none = run_without_key(&app).await;
    assert_eq!(none.code, Some(1), "{none:#?}");
    assert!(none.stderr.contains("needs an API key"), "{none:#?}");
}

async fn run_without_key(app: &crate::support::Backend) -> crate::support::Run {
    let mut command = app.bare_command(&["agents"]);
    command.env("VAPORA_URL", &app.url);
    run(command).await
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let app = spawn_backend().await;
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let run = app.vapora(&["project", "list", "--url", &url]).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach the Vapora server at {url}")),
        "{run:#?}"
    );
    assert!(
        run.stderr.to_lowercase().contains("connection refused"),
        "{run:#?}"
    );

    let bad = app.vapora(&["project", "list", "--url", "localhost:8001"]).await;
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert!(bad.stderr.contains("invalid server URL"), "{bad:#?}");
}

#[tokio::test]
async fn completions_print_a_script_without_a_server() {
    let app = spawn_backend().await;
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef vapora"),
        ("fish", "complete -c vapora"),
    ] {
        // A URL nothing listens on: completions must not need one.
        let run = app
            .vapora(&["completions", shell, "--url", "http://127.0.0.1:9"])
            .await;
        assert!(run.ok().contains(marker), "{shell}: {run:#?}");
        assert!(run.stdout.contains("task"), "subcommands are completed: {run:#?}");
    }
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let app = spawn_backend().await;
    let help = app.vapora(&["task", "watch", "--help"]).await;
    let out = help.ok();
    for line in [
        "3    the watched task failed",
        "4    the watched task was cancelled",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
}
