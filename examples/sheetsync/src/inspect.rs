//! `sheetsync check` and `sheetsync plan`: look at both sides of every mapping and say what is
//! wrong, or what the next cycle would write, without writing anything (not even the header of
//! a new, empty tab: that is reported as what the first cycle will write).

use std::process::ExitCode;
use std::sync::Arc;

use sheetsync::gsheets::watch::{journal_exists, ChangeDetection, JOURNAL_TAB};
use sheetsync::gsheets::{Layout, SheetTable, SheetsClient};
use sheetsync::sync::{check_key, mapped_columns, DbTable, Sides};
use sheetsync::{
    Engine, Error, ErrorKind, Plan, ResolverSpec, Result, SheetsConfig, Side, SyncConfig,
    TableSchema, WriteOp,
};

use crate::config::Config;

/// A Sheets client that gives up quickly: a command checking a setup reports a server that
/// does not answer at once, where the daemon keeps retrying for minutes.
pub async fn impatient_client(sheets: &SheetsConfig) -> Result<Arc<SheetsClient>> {
    let mut config = sheets.client_config().await?;
    config.backoff.max_retries = 1;
    Ok(Arc::new(SheetsClient::new(config).await?))
}

/// The lines `check` prints, and whether any failed.
struct Report {
    ok: bool,
}

impl Report {
    fn line(&mut self, what: &str, r: Result<String>) {
        match r {
            Ok(detail) => println!("ok    {what}: {detail}"),
            Err(e) => {
                self.ok = false;
                println!("FAIL  {what}: {e}");
            }
        }
    }
}

/// `sheetsync check`: exit code 1 when anything failed.
pub async fn check(cfg: &Config) -> Result<ExitCode> {
    let mut report = Report { ok: true };
    let client = match impatient_client(&cfg.sheets).await {
        Ok(c) => {
            report.line("sheets credentials", Ok(cfg.sheets.base_url.clone()));
            Some(c)
        }
        Err(e) => {
            report.line("sheets credentials", Err(e));
            None
        }
    };
    for m in &cfg.mappings {
        check_mapping(&mut report, cfg, m, client.as_ref()).await;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn check_mapping(
    report: &mut Report,
    cfg: &Config,
    m: &SyncConfig,
    client: Option<&Arc<SheetsClient>>,
) {
    let name = &m.sync.name;
    let what = format!("{name}: database table {}", m.table);
    let db = match DbTable::open(&m.database_url, &m.table, mapped_columns(m)).await {
        Ok(db) => db,
        Err(e) => return report.line(&what, Err(e)),
    };
    let cols: Vec<String> = db
        .schema()
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.ty))
        .collect();
    report.line(&what, Ok(cols.join(", ")));
    // Not failures: the table syncs, but these values are not exact.
    for w in db.warnings() {
        println!("warn  {name}: {w}");
    }
    report.line(
        &format!("{name}: key"),
        check_key(m, &db.schema()).map(|()| format!("{:?}", db.schema().key_names())),
    );
    // Not a failure: `run` installs change capture unless told not to.
    match db.is_installed().await {
        Ok(true) => report.line(&format!("{name}: change capture"), Ok("installed".into())),
        Ok(false) => println!(
            "warn  {name}: change capture is not installed on {}; `sheetsync install` (or `sheetsync run`) installs it",
            m.table
        ),
        Err(e) => report.line(&format!("{name}: change capture"), Err(e)),
    }
    report.line(
        &format!("{name}: state store"),
        db.state_store().await.map(|_| "ready".into()),
    );
    // Conflict rules compile and type-check against the table's columns.
    let specs = m.sync.resolver_specs();
    let schema = TableSchema {
        name: name.clone(),
        ..db.schema().clone()
    };
    report.line(
        &format!("{name}: conflict resolvers"),
        ResolverSpec::build_chain(&specs, &schema).map(|_| format!("{} ready", specs.len())),
    );
    let Some(client) = client else { return };
    let what = format!("{name}: sheet {}#{}", m.spreadsheet_id, m.sheet_id);
    match Sides::open(m, client.clone()).await {
        Ok(s) => {
            report.line(&what, check_sheet(&s, client).await);
            check_change_detection(report, cfg, &s, client).await;
        }
        Err(e) => report.line(&format!("{name}: mapping"), Err(e)),
    }
}

/// How the mapping finds people's edits, what that needs, and the latency to expect.
async fn check_change_detection(
    report: &mut Report,
    cfg: &Config,
    s: &Sides,
    client: &Arc<SheetsClient>,
) {
    let opts = cfg.sheets.watch_options();
    let mode = opts.mode;
    let what = format!("{}: change detection {mode}", s.mapping.name);
    let expect = mode.expectation(&opts);
    match mode {
        ChangeDetection::Journal => {
            match journal_exists(client, &s.sheet.options().spreadsheet_id).await {
                Ok(true) => report.line(&what, Ok(expect)),
                Ok(false) => println!(
                    "warn  {what}: the spreadsheet has no {JOURNAL_TAB} tab yet; `sheetsync install` makes it (or the Apps Script does, on the first edit). Until then edits are found by full reads"
                ),
                Err(e) => report.line(&what, Err(e)),
            }
        }
        ChangeDetection::Webhook if cfg.server.webhook_secret.is_none() => report.line(
            &what,
            Err(Error::new(
                ErrorKind::ConfigInvalid,
                "webhook mode needs server.webhook_secret (and a public URL Google can post to); or use change_detection = \"journal\", which needs neither",
            )),
        ),
        ChangeDetection::Webhook => report.line(&what, Ok(expect)),
        ChangeDetection::Polling => println!("warn  {what}: {expect}"),
    }
}

/// The tab's layout; for an empty tab, what the first cycle will write there.
async fn check_sheet(s: &Sides, client: &Arc<SheetsClient>) -> Result<String> {
    let l = dry_sheet(s, client).check_layout().await?;
    if !l.header_assumed {
        return Ok(format!(
            "tab {:?}, {} rows, header maps all {} columns",
            l.title,
            l.row_count,
            l.columns.len()
        ));
    }
    // Without change capture there is no plan yet (`run` installs it first); the table has
    // never synced then, and all its rows go to the Sheet.
    let (to_sheet, to_db) = if s.db.is_installed().await? {
        let plan = dry_plan(s, client).await?;
        (plan.sheet.len(), plan.db.len())
    } else {
        (count_rows(&s.db).await?, 0)
    };
    Ok(format!(
        "tab {:?} is empty: the first cycle writes the header in row {} ({}) and {to_sheet} rows to the Sheet, {to_db} to the database",
        l.title,
        l.header_row,
        header_names(s),
    ))
}

async fn count_rows(db: &DbTable) -> Result<usize> {
    use futures::StreamExt;
    let table = db.table();
    let mut pages = table.scan();
    let mut n = 0;
    while let Some(page) = pages.next().await {
        n += page?.len();
    }
    Ok(n)
}

fn header_names(s: &Sides) -> String {
    let names: Vec<&str> = s.schema.columns.iter().map(|c| c.name.as_str()).collect();
    names.join(", ")
}

/// The mapping's Sheet as plans see it: nothing is written, an empty tab reads as if its
/// header were there.
fn dry_sheet(s: &Sides, client: &Arc<SheetsClient>) -> Arc<SheetTable> {
    let mut opts = s.sheet.options().clone();
    opts.create_header = false;
    opts.assume_header = true;
    Arc::new(SheetTable::new(client.clone(), opts, s.schema.clone()))
}

/// What the mapping's next cycle would write.
async fn dry_plan(s: &Sides, client: &Arc<SheetsClient>) -> Result<Plan> {
    let engine = Engine::builder(s.mapping.clone(), dry_sheet(s, client), s.db.table())
        .state(s.db.state_store().await?)
        .build()
        .await?;
    engine.plan().await
}

/// `sheetsync plan`.
pub async fn plan(cfg: &Config, only: Option<&str>, json: bool) -> Result<()> {
    let client = impatient_client(&cfg.sheets).await?;
    for m in crate::selected(cfg, only)? {
        let s = Sides::open(m, client.clone()).await?;
        let layout = dry_sheet(&s, &client).check_layout().await?;
        let p = dry_plan(&s, &client).await?;
        if json {
            let header = layout.header_assumed.then(|| header_names(&s));
            println!(
                "{}",
                serde_json::json!({ "mapping": m.sync.name, "writes_header": header, "plan": p })
            );
            continue;
        }
        println!("mapping {}:", m.sync.name);
        print_plan(&s, &layout, &p);
    }
    Ok(())
}

/// One planned write for people: what changes, column by column (`name: "a" → "b"`), when the
/// engine knows what the side holds now.
fn describe(schema: &sheetsync::TableSchema, op: &WriteOp) -> String {
    let show = crate::tables::shown;
    let key = |row: &sheetsync::Row| {
        schema
            .key
            .iter()
            .map(|&i| row.0[i].to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    let all = |row: &sheetsync::Row| {
        let cols = schema.columns.iter().zip(&row.0);
        cols.map(|(c, v)| format!("{}={}", c.name, show(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match op {
        WriteOp::Upsert {
            row,
            expected: sheetsync::Expected::Row(before),
        } => {
            let changed: Vec<String> = schema
                .columns
                .iter()
                .zip(before.0.iter().zip(&row.0))
                .filter(|(_, (b, a))| b != a)
                .map(|(c, (b, a))| format!("{}: {} → {}", c.name, show(b), show(a)))
                .collect();
            format!("update {}: {}", key(row), changed.join(", "))
        }
        WriteOp::Upsert {
            row,
            expected: sheetsync::Expected::Absent,
        } => {
            format!("insert {}: {}", key(row), all(row))
        }
        WriteOp::Upsert { row, .. } => format!("write {}: {}", key(row), all(row)),
        WriteOp::Insert { row } => format!("insert (key from the database): {}", all(row)),
        WriteOp::Delete { key, .. } => format!("delete {key}"),
        WriteOp::SetKey { locator, row } => {
            format!("give the row at {locator} the key {}", key(row))
        }
    }
}

fn print_plan(s: &Sides, layout: &Layout, p: &Plan) {
    if layout.header_assumed {
        println!(
            "  the tab {:?} is empty: the header is written in row {} first ({})",
            layout.title,
            layout.header_row,
            header_names(s)
        );
    }
    for (side, ops) in [(Side::Sheet, &p.sheet), (Side::Db, &p.db)] {
        let count = |f: fn(&WriteOp) -> bool| ops.iter().filter(|o| f(&o.op)).count();
        println!(
            "  {side:>5}: {} upserts, {} deletes, {} new keys",
            count(|o| matches!(o, WriteOp::Upsert { .. } | WriteOp::Insert { .. })),
            count(|o| matches!(o, WriteOp::Delete { .. })),
            count(|o| matches!(o, WriteOp::SetKey { .. })),
        );
        for o in ops.iter().take(20) {
            println!("         {}", describe(&s.schema, &o.op));
        }
        if ops.len() > 20 {
            println!("         ... and {} more", ops.len() - 20);
        }
    }
    println!("  conflicts: {}", p.conflicts.len());
    for c in &p.conflicts {
        println!("    {}", serde_json::to_string(c).unwrap_or_default());
    }
    println!("  held: {}", p.held.len());
    for h in &p.held {
        println!("    {}: {}", h.locator.as_deref().unwrap_or("?"), h.reason);
    }
    for (side, deletes, rows) in &p.guard {
        println!("  mass-delete guard: {deletes} of {rows} rows would be deleted on the {side}; they would wait for approval (`sheetsync deletes list`)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sheetsync::{Column, ColumnType, Expected, Row, RowKey, TableSchema, Value};

    #[test]
    fn planned_writes_read_as_before_and_after() {
        let schema = TableSchema::new(
            "items",
            vec![
                Column::new("id", ColumnType::Int),
                Column::new("name", ColumnType::Text),
                Column::new("qty", ColumnType::Int),
            ],
            &["id"],
        )
        .unwrap();
        let row = |id: i64, name: &str, qty: Value| Row::new(vec![id.into(), name.into(), qty]);
        let ops = [
            WriteOp::Upsert {
                row: row(1, "Widget v2", Value::Int(5)),
                expected: Expected::Row(row(1, "Widget", Value::Int(5))),
            },
            WriteOp::Upsert {
                row: row(2, "Gadget", Value::Null),
                expected: Expected::Absent,
            },
            WriteOp::Delete {
                key: RowKey::from_values(&[Value::Int(3)]),
                expected: Expected::Any,
            },
            WriteOp::SetKey {
                locator: "'Sheet1'!A5:C5".into(),
                row: row(4, "typed", Value::Int(1)),
            },
        ];
        let lines: Vec<String> = ops.iter().map(|o| describe(&schema, o)).collect();
        assert_eq!(
            lines,
            [
                r#"update 1: name: "Widget" → "Widget v2""#,
                r#"insert 2: id=2, name="Gadget", qty=empty"#,
                "delete 3",
                "give the row at 'Sheet1'!A5:C5 the key 4",
            ]
        );
    }
}
