//! Reading the configuration: TOML text with `${VAR}` expansion and environment overrides,
//! checked by [`crate::validate`] before it is handed out. It sits above both the settings'
//! types (`config`) and their checks (`validate`), so neither imports the other's user.

use std::collections::BTreeMap;
use std::path::Path;

use sheetsync::{Error, ErrorKind, Result};

use crate::config::Config;

/// Replaces `${NAME}` with the environment variable `NAME`; a missing variable is an error that
/// names it (a typo must not become an empty password).
pub fn expand_env(text: &str, env: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                "unterminated ${ in the configuration",
            )
        })?;
        let name = &after[..end];
        let value = env.get(name).ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("the configuration uses ${{{name}}} but the environment variable {name} is not set"),
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Config {
    /// Parses a configuration text, expanding `${VAR}`s from `env` and applying the overrides
    /// `SHEETSYNC_WEBHOOK_SECRET`, `SHEETSYNC_CREDENTIALS` (or `GOOGLE_APPLICATION_CREDENTIALS`),
    /// `SHEETSYNC_SHEETS_URL`, `SHEETSYNC_LISTEN`, `SHEETSYNC_ADMIN_TOKEN`, and
    /// `SHEETSYNC_DATABASE_URL_<MAPPING>`
    /// (mapping name upper-cased, non-alphanumerics as `_`).
    pub fn parse(text: &str, env: &BTreeMap<String, String>) -> Result<Config> {
        let invalid = |e: &dyn std::fmt::Display| {
            Error::new(ErrorKind::ConfigInvalid, format!("configuration: {e}"))
        };
        // Expand inside string values only: not in comments, and an environment value can
        // never change the file's structure.
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| invalid(&e))?;
        for (_, v) in doc.iter_mut() {
            expand_value(v, env)?;
        }
        check_mapping_keys(&doc)?;
        let mut cfg: Config = toml::Value::Table(doc)
            .try_into()
            .map_err(|e| invalid(&e))?;
        if let Some(v) = env.get("SHEETSYNC_WEBHOOK_SECRET") {
            cfg.server.webhook_secret = Some(v.clone());
        }
        if let Some(v) = env
            .get("SHEETSYNC_CREDENTIALS")
            .or_else(|| env.get("GOOGLE_APPLICATION_CREDENTIALS"))
        {
            cfg.sheets.credentials = Some(v.clone());
        }
        if let Some(v) = env.get("SHEETSYNC_SHEETS_URL") {
            cfg.sheets.base_url = v.clone();
        }
        if let Some(v) = env.get("SHEETSYNC_LISTEN") {
            cfg.server.listen = v.clone();
        }
        if let Some(v) = env.get("SHEETSYNC_ADMIN_TOKEN") {
            cfg.server.admin_token = Some(v.clone());
        }
        for m in &mut cfg.mappings {
            let var = format!("SHEETSYNC_DATABASE_URL_{}", env_name(&m.sync.name));
            if let Some(v) = env.get(&var) {
                m.database_url = v.clone();
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a file with the process environment.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        Config::parse(&text, &std::env::vars().collect())
    }

    /// Checks every setting (see [`crate::validate`]), taking spreadsheet URLs apart; all
    /// problems are reported at once, one line each.
    fn validate(&mut self) -> Result<()> {
        let problems = crate::validate::problems(self);
        let message = match problems.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            many => format!(
                "{} problems in the configuration:\n  - {}",
                many.len(),
                many.join("\n  - ")
            ),
        };
        Err(Error::new(ErrorKind::ConfigInvalid, message))
    }
}

fn expand_value(v: &mut toml::Value, env: &BTreeMap<String, String>) -> Result<()> {
    match v {
        toml::Value::String(s) => *s = expand_env(s, env)?,
        toml::Value::Array(a) => a.iter_mut().try_for_each(|x| expand_value(x, env))?,
        toml::Value::Table(t) => t.iter_mut().try_for_each(|(_, x)| expand_value(x, env))?,
        _ => {}
    }
    Ok(())
}

/// `[[mapping]]` flattens the core settings, which serde cannot check for unknown keys: do it
/// here, so a misspelt `resolver =` is an error rather than silently ignored.
fn check_mapping_keys(doc: &toml::Table) -> Result<()> {
    const KNOWN: &[&str] = &[
        "spreadsheet_id",
        "sheet_id",
        "header_row",
        "database_url",
        "table",
        "on_panic",
        "sheet_status",
        "status_column",
        "name",
        "key",
        "columns",
        "resolvers",
        "update_vs_delete",
        "deletes",
        "guard",
        "keys",
        "timing",
    ];
    if let Some(toml::Value::Array(maps)) = doc.get("mapping") {
        for (i, m) in maps.iter().enumerate() {
            if let Some(t) = m.as_table() {
                for k in t.keys() {
                    if !KNOWN.contains(&k.as_str()) {
                        return Err(Error::new(
                            ErrorKind::ConfigInvalid,
                            format!(
                                "mapping #{}: unknown setting {k:?} (known: {})",
                                i + 1,
                                KNOWN.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `orders-eu` → `ORDERS_EU`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sheetsync::{OnPanic, SheetsConfig};

    use super::*;

    const SAMPLE: &str = r#"
[sheets]
base_url = "http://127.0.0.1:9000/"

[server]
webhook_secret = "${SECRET}"

[[mapping]]
name = "orders"
spreadsheet_id = "abc"
sheet_id = 12
database_url = "postgres://localhost/shop"
table = "orders"
key = ["id"]
columns = [{ name = "id" }, { name = "total", direction = "db_to_sheet" }]
resolvers = [{ strategy = "column_owner", owners = { total = "db" } }, { strategy = "last_write_wins", granularity = "row" }]
guard = { max_share = 0.2 }
"#;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_expands_and_overrides() {
        let cfg = Config::parse(
            SAMPLE,
            &env(&[
                ("SECRET", "s3cret"),
                ("SHEETSYNC_DATABASE_URL_ORDERS", "sqlite://x.db"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.server.webhook_secret.as_deref(), Some("s3cret"));
        let m = &cfg.mappings[0];
        assert_eq!(m.database_url, "sqlite://x.db");
        assert_eq!(m.sheet_id, 12);
        assert_eq!(m.sync.guard.max_share, 0.2);
        assert_eq!(m.sync.resolvers.len(), 2);
    }

    #[test]
    fn the_reference_configuration_parses() {
        let cfg = Config::parse(
            include_str!("../sheetsync.example.toml"),
            &env(&[
                ("HOME", "/home/me"),
                ("SHEETSYNC_WEBHOOK_SECRET", "x"),
                ("SHEETSYNC_ADMIN_TOKEN", "0123456789abcdef"),
                ("PGPASSWORD", "pw"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.server.admin_listen.as_deref(), Some("127.0.0.1:8788"));
        assert_eq!(cfg.server.limits().max_connections, 128);
        let hosts = cfg.server.admin_access().hosts;
        assert_eq!(hosts, ["127.0.0.1", "::1", "localhost"]);
        let m = &cfg.mappings[0];
        assert_eq!(m.table, "public.orders");
        assert_eq!(
            m.database_url,
            "postgres://sheetsync:pw@db.internal:5432/shop"
        );
        assert_eq!(m.sync.columns.len(), 5);
        // Its conflict rules compile against the table it describes.
        let ty = |n: &str| sheetsync::Column::new(n, sheetsync::ColumnType::Text);
        let cols = ["id", "customer", "status", "total", "note"]
            .map(ty)
            .to_vec();
        let schema = sheetsync::TableSchema::new("orders", cols, &["id"]).unwrap();
        let chain = sheetsync::ResolverSpec::build_chain(&m.sync.resolvers, &schema);
        assert!(chain.is_ok(), "{:?}", chain.err());
        assert_eq!(m.sync.guard.max_count, Some(500));
        assert_eq!(m.sync.timing.full_scan_interval_ms, 30_000);
        assert_eq!(
            cfg.sheets.credentials.as_deref(),
            Some("/home/me/.config/sheetsync/service-account.json")
        );
    }

    #[test]
    fn the_key_defaults_to_the_tables_and_on_panic_to_restart() {
        let env = env(&[("SECRET", "x")]);
        let cfg = Config::parse(SAMPLE, &env).unwrap();
        assert_eq!(cfg.mappings[0].on_panic, OnPanic::Restart);
        let keyless = SAMPLE.replace("key = [\"id\"]\n", "on_panic = \"exit\"\n");
        let cfg = Config::parse(&keyless, &env).unwrap();
        assert!(cfg.mappings[0].sync.key.is_empty());
        assert_eq!(cfg.mappings[0].on_panic, OnPanic::Exit);
        let bad = SAMPLE.replace("key = [\"id\"]\n", "on_panic = \"ignore\"\n");
        let e = Config::parse(&bad, &env).unwrap_err();
        assert!(e.to_string().contains("ignore"), "{e}");
    }

    #[test]
    fn errors_say_exactly_what_is_wrong() {
        let e = Config::parse(SAMPLE, &env(&[])).unwrap_err();
        assert!(e.to_string().contains("SECRET is not set"), "{e}");
        let bad = SAMPLE.replace("table = \"orders\"", "tabel = \"orders\"");
        let e = Config::parse(&bad, &env(&[("SECRET", "x")])).unwrap_err();
        assert!(
            e.to_string().contains("tabel") || e.to_string().contains("table"),
            "{e}"
        );
        let bad = SAMPLE.replace("resolvers =", "resolver =");
        let e = Config::parse(&bad, &env(&[("SECRET", "x")])).unwrap_err();
        assert!(
            e.to_string().contains("unknown setting \"resolver\""),
            "{e}"
        );
        let bad = SAMPLE.replace("postgres://", "oracle://");
        let e = Config::parse(&bad, &env(&[("SECRET", "x")])).unwrap_err();
        assert!(e.to_string().contains("database_url must start"), "{e}");
    }

    #[test]
    fn replicas_share_the_mappings_and_split_the_quota() {
        let secret = env(&[("SECRET", "x")]);
        let cfg = Config::parse(SAMPLE, &secret).unwrap();
        assert!(cfg.replicas.share && cfg.replicas.quota_split == 1);
        let three = format!("[replicas]\nquota_split = 3\nshare = false\n{SAMPLE}");
        let cfg = Config::parse(&three, &secret).unwrap();
        assert!(!cfg.replicas.share_options().enabled);
        let sheets = SheetsConfig {
            reads_per_minute: 60,
            writes_per_minute: 61,
            ..SheetsConfig::default()
        };
        let part = cfg.replicas.quota_part(&sheets);
        assert_eq!((part.reads_per_minute, part.writes_per_minute), (20, 20));
        let bad = format!("[replicas]\nquota_split = 0\nttl_ms = 1000\n{SAMPLE}");
        let e = Config::parse(&bad, &secret).unwrap_err().to_string();
        assert!(e.contains("replicas.quota_split = 0"), "{e}");
        assert!(
            e.contains("replicas.ttl_ms = 1000 is less than two heartbeats"),
            "{e}"
        );
    }
}
