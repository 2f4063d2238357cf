//! `bext domains add|list|rm`: tenants' own domains, kept by the deploy
//! registry and changed through its admin API (`{base}/domains`), on a
//! running server or in this process, like `bext apps`.

use serde_json::json;

use super::registry::{At, list, number, out, segment, text, when};

/// What `bext domains` does.
pub(crate) enum DomainsCommand {
    /// Every tenant's domain.
    List,
    /// Record `domain` for `tenant` of `app`.
    Add {
        /// The tenant's own host name.
        domain: String,
        /// The app it reaches.
        app: String,
        /// The tenant the app is told of.
        tenant: String,
    },
    /// Forget a domain.
    Remove(String),
}

/// `bext domains add|list|rm`.
pub(crate) fn domains(at: &At<'_>, command: DomainsCommand) -> anyhow::Result<()> {
    let client = at.client(match &command {
        DomainsCommand::List => "to list tenants' domains",
        DomainsCommand::Add { .. } => "to add a domain",
        DomainsCommand::Remove(_) => "to remove a domain",
    })?;
    match command {
        DomainsCommand::List => {
            let domains = client.call("GET", "/domains", None)?;
            if at.json {
                out!("{}", serde_json::to_string_pretty(&domains)?);
                return Ok(());
            }
            out!("{:<40} {:<20} {:<20} {:<30} BY", "DOMAIN", "APP", "TENANT", "ADDED");
            for d in list(&domains) {
                out!(
                    "{:<40} {:<20} {:<20} {:<30} {}",
                    text(&d["domain"]),
                    text(&d["app"]),
                    text(&d["tenant"]),
                    when(number(&d["added_at"])),
                    text(&d["added_by"])
                );
            }
        }
        DomainsCommand::Add { domain, app, tenant } => {
            let added = client.call_json(
                "POST",
                "/domains",
                &json!({ "domain": domain, "app": app, "tenant": tenant }),
            )?;
            if at.json {
                out!("{}", serde_json::to_string_pretty(&added)?);
                return Ok(());
            }
            let name = text(&added["domain"]);
            out!(
                "{name} reaches app {} as tenant {}",
                text(&added["app"]),
                text(&added["tenant"])
            );
            if client.platform.settings.acme.is_some() {
                out!("its certificate is ordered at its first HTTPS handshake: point its DNS at this server first");
            } else {
                out!("no certificate: the platform has no [platform.acme]; {name} is served over plain HTTP");
            }
        }
        DomainsCommand::Remove(domain) => {
            let removed = client.call("DELETE", &format!("/domains/{}", segment(&domain)), None)?;
            if at.json {
                out!("{}", serde_json::to_string_pretty(&removed)?);
                return Ok(());
            }
            out!(
                "removed {} (app {}, tenant {})",
                text(&removed["domain"]),
                text(&removed["app"]),
                text(&removed["tenant"])
            );
        }
    }
    Ok(())
}
