//! `vapora keys …`: issue, list and revoke API keys, and show one's own.

use super::Ctx;
use crate::cli::{KeysCommand, value_name};
use crate::client::KeyRequest;
use crate::client::wire::KeyInfo;
use crate::exit::Exit;
use crate::output::{self, details, maybe_time, next_page_hint, print_table, table, time};

pub async fn run(ctx: &Ctx, command: KeysCommand) -> anyhow::Result<Exit> {
    let client = &ctx.client;
    match command {
        KeysCommand::Create {
            name,
            role,
            projects,
            expires_at,
        } => {
            let request = KeyRequest {
                name,
                role: value_name(&role),
                projects,
                expires_at,
            };
            let reply = client.create_key(&request).await?;
            ctx.print(&reply, |issued| {
                let mut rows = info_rows(&issued.info);
                rows.push(("key", issued.key.clone()));
                print_table(details(rows))?;
                output::note("Store the key now: the server keeps only its hash and never shows it again.");
                Ok(())
            })
        }
        KeysCommand::List(page) => {
            let reply = client.list_keys(page.limit, page.cursor).await?;
            ctx.print(&reply, |page| {
                let mut t = table([
                    "ID",
                    "NAME",
                    "ROLE",
                    "PROJECTS",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                    "REVOKED",
                ]);
                for k in &page.items {
                    t.add_row(vec![
                        k.id.clone(),
                        k.name.clone(),
                        k.role.clone(),
                        projects(&k.projects),
                        time(k.created_at),
                        maybe_time(k.last_used_at),
                        maybe_time(k.expires_at),
                        maybe_time(k.revoked_at),
                    ]);
                }
                print_table(t)?;
                next_page_hint(page.next_cursor.as_deref());
                Ok(())
            })
        }
        KeysCommand::Revoke { id } => {
            let reply = client.revoke_key(&id).await?;
            ctx.print(&reply, |k| {
                print_table(details(info_rows(k)))?;
                output::note(format!("revoked key {}", k.id));
                Ok(())
            })
        }
        KeysCommand::Me => {
            let reply = client.me().await?;
            ctx.print(&reply, |k| print_table(details(info_rows(k))))
        }
    }
}

fn info_rows(k: &KeyInfo) -> Vec<(&'static str, String)> {
    vec![
        ("id", k.id.clone()),
        ("name", k.name.clone()),
        ("role", k.role.clone()),
        ("projects", projects(&k.projects)),
        ("created", time(k.created_at)),
        ("last used", maybe_time(k.last_used_at)),
        ("expires", maybe_time(k.expires_at)),
        ("revoked", maybe_time(k.revoked_at)),
    ]
}

/// An admin key's empty list means every project.
fn projects(ids: &[vapora_shared::ProjectId]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
