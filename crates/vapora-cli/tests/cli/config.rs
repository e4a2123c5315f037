//! Where the URL and key come from: the config file, overridden by
//! `VAPORA_URL`/`VAPORA_KEY`, overridden by the flags.

use crate::support::{Backend, Run, run, spawn_backend};

/// A URL nothing listens on.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

async fn vapora_with_env(app: &Backend, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = app.bare_command(args);
    command.envs(env.iter().copied());
    run(command).await
}

#[tokio::test]
async fn the_file_supplies_url_and_key_and_env_and_flags_override_it() {
    let app = spawn_backend().await;
    let dir = app.home.path().join(".config").join("vapora");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("url = \"{}\"\nkey = \"{}\"\n", app.url, app.admin_key),
    )
    .unwrap();

    // The file alone is enough.
    vapora_with_env(&app, &[], &["project", "list"]).await.ok();

    // VAPORA_URL beats the file: the dead URL is the one tried.
    let dead = dead_url();
    let env_url = vapora_with_env(&app, &[("VAPORA_URL", &dead)], &["project", "list"]).await;
    assert_eq!(env_url.code, Some(1), "{env_url:#?}");
    assert!(env_url.stderr.contains(&dead), "{env_url:#?}");

    // --url beats VAPORA_URL.
    vapora_with_env(
        &app,
        &[("VAPORA_URL", &dead)],
        &["project", "list", "--url", &app.url],
    )
    .await
    .ok();

    // VAPORA_KEY beats the file's key, and --key beats VAPORA_KEY.
    let wrong = format!("vk_{}_{}", "1".repeat(16), "1".repeat(64));
    let env_key = vapora_with_env(&app, &[("VAPORA_KEY", &wrong)], &["project", "list"]).await;
    assert!(env_key.stderr.contains("unknown API key"), "{env_key:#?}");
    vapora_with_env(
        &app,
        &[("VAPORA_KEY", &wrong)],
        &["project", "list", "--key", &app.admin_key],
    )
    .await
    .ok();
}

#[tokio::test]
async fn config_names_another_file_and_refuses_typos() {
    let app = spawn_backend().await;
    let file = app.home.path().join("elsewhere.toml");
    std::fs::write(
        &file,
        format!("url = \"{}\"\nkey = \"{}\"\n", app.url, app.admin_key),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    vapora_with_env(&app, &[], &["--config", path, "agents"])
        .await
        .ok();

    let missing = vapora_with_env(&app, &[], &["--config", "/nonexistent/vapora.toml", "agents"]).await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("does not exist"), "{missing:#?}");

    std::fs::write(&file, "uri = \"http://x\"\n").unwrap();
    let typo = vapora_with_env(&app, &[], &["--config", path, "agents"]).await;
    assert_eq!(typo.code, Some(1), "{typo:#?}");
    assert!(typo.stderr.contains("uri"), "{typo:#?}");
}

#[tokio::test]
async fn xdg_config_home_is_respected() {
    let app = spawn_backend().await;
    let xdg = app.home.path().join("xdg");
    std::fs::create_dir_all(xdg.join("vapora")).unwrap();
    std::fs::write(
        xdg.join("vapora").join("config.toml"),
        format!("url = \"{}\"\nkey = \"{}\"\n", app.url, app.admin_key),
    )
    .unwrap();
    let xdg = xdg.to_str().unwrap();
    vapora_with_env(&app, &[("XDG_CONFIG_HOME", xdg)], &["keys", "me"])
        .await
        .ok();
}
