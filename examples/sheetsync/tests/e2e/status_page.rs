//! The status page of a running daemon, in headless Chromium: asked for the admin token, it
//! shows a held row with its reason, a conflict and a pending delete; it refreshes by itself;
//! values typed into the Sheet as markup are shown as text and run nothing; a wrong token, or a
//! daemon that stopped answering, gives an error, not a blank page.

use serde_json::{json, Value};

use crate::browser::{find_chromium, Browser};
use crate::harness::{row, rows_map, wait_until, Backend, World};

/// Typed into a price cell: not a decimal, so the row is held, and its reason shows the value.
const SCRIPT_VALUE: &str = "<script>pwned=1</script>";
/// The same later, in another row, as an image whose error handler would run.
const IMG_VALUE: &str = "<img src=x onerror=pwned=2>";
/// The Sheet's side of the conflict.
const MARKUP_NAME: &str = "<b>sheet</b> name";

/// What the page shows (as a person sees it: visible or not): whether it asks for the token, its error line, the rows of its
/// tables, how many elements its data made (none may), and whether a script of ours ran.
const PAGE_STATE_JS: &str = r#"(() => {
  const el = id => document.getElementById(id);
  if (!el("login") || !el("content")) return null;
  const rows = id => [...el(id).tBodies[0].rows].map(tr => [...tr.cells].map(td => td.textContent));
  return {
    login: el("login").checkVisibility(),
    content: el("content").checkVisibility(),
    error: el("error").checkVisibility() ? el("error").textContent : "",
    mappings: rows("mappings"), held: rows("held"), conflicts: rows("conflicts"), deletes: rows("deletes"),
    markup: document.querySelectorAll("main script, main img, main b").length,
    pwned: typeof window.pwned,
    url: location.href,
  };
})()"#;

fn has_row(state: &Value, table: &str, ok: impl Fn(&[Value]) -> bool) -> bool {
    state[table]
        .as_array()
        .is_some_and(|rows| rows.iter().any(|r| r.as_array().is_some_and(|c| ok(c))))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

pub async fn shows_held_rows_conflicts_and_pending_deletes(backend: Backend) {
    let mut w = World::new(backend, "statuspage").await;
    let seed: Vec<_> = (1..=4)
        .map(|i| {
            let (id, name) = (i.to_string(), format!("item {i}"));
            (i, row([&id, &name, "", "1.50", "2024-05-01", "true"]))
        })
        .collect();
    let m = w
        .add_mapping(
            "items",
            &seed,
            "resolvers = [{ strategy = \"manual\" }]\nguard = { max_count = 0 }",
        )
        .await;
    let t = w.mappings[m].table.clone();
    w.start().await;
    w.converge(m, &rows_map(&seed)).await;
    // With the daemon stopped, both sides change row 1 (a conflict for a person), the database
    // loses row 3 (held back by the guard) and row 2 gets a price that is no decimal (held).
    drop(w.take_daemon());
    w.db.exec(&format!("UPDATE {t} SET name = 'db name' WHERE id = 1"))
        .await;
    w.type_cell(m, 1, "name", json!(MARKUP_NAME));
    w.db.exec(&format!("DELETE FROM {t} WHERE id = 3")).await;
    w.type_cell(m, 2, "price", json!(SCRIPT_VALUE));
    w.start().await;
    wait_until(
        "the conflict, the held row and the pending delete",
        || async {
            let c = w.conflicts_list(m).await?;
            let d = w.pending_deletes(m).await?;
            let (conflicts, held) = (c[0]["conflicts"].as_array(), c[0]["held"].as_array());
            match (conflicts.map(Vec::len), held.map(Vec::len), d.len()) {
                (Some(1), Some(1), 1) => Ok(()),
                got => Err(format!("(conflicts, held, pending deletes) = {got:?}")),
            }
        },
    )
    .await;

    let url = format!("http://127.0.0.1:{}/status", w.port);
    let tmp = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let run_dir = w.dir.join("browser");
    std::fs::create_dir_all(&run_dir).unwrap();
    let mut browser = tokio::task::block_in_place(|| {
        let mut b = Browser::launch(
            &find_chromium(),
            &run_dir,
            &tmp.join("status_page-failure.png"),
        );
        b.open(&url);
        // Without a token the page asks for one and says why: not a blank page.
        b.wait_for(
            PAGE_STATE_JS,
            |s| s["login"] == true && text(&s["error"]).contains("needs `Authorization: Bearer"),
            "the page to ask for the admin token",
        );
        log_in(&mut b, &w.admin_token);
        let s = b.wait_for(
            PAGE_STATE_JS,
            |s| {
                s["content"] == true
                    && s["login"] == false
                    && has_row(s, "held", |r| {
                        r[1] == "2" && text(&r[3]).contains(SCRIPT_VALUE)
                    })
                    && has_row(s, "conflicts", |r| {
                        r[1] == "1"
                            && text(&r[2]).contains(MARKUP_NAME)
                            && text(&r[2]).contains("db name")
                    })
                    && has_row(s, "deletes", |r| r[1] == "3" && r[2] == "db")
                    && has_row(s, "mappings", |r| r[0] == "items" && r[1] == "ok")
            },
            "the held row, the conflict and the pending delete on the page",
        );
        assert_eq!(s["markup"], 0, "values became elements: {s}");
        assert_eq!(s["pwned"], "undefined", "a value ran as script: {s}");
        assert!(!text(&s["url"]).contains(&w.admin_token), "{s}");
        b
    });

    // Another held row appears without a reload.
    w.type_cell(m, 4, "price", json!(IMG_VALUE));
    tokio::task::block_in_place(|| {
        let s = browser.wait_for(
            PAGE_STATE_JS,
            |s| {
                has_row(s, "held", |r| {
                    r[1] == "4" && text(&r[3]).contains(IMG_VALUE)
                })
            },
            "the page to show the second held row by itself",
        );
        assert_eq!(s["markup"], 0, "values became elements: {s}");
        assert_eq!(s["pwned"], "undefined", "a value ran as script: {s}");
        browser.screenshot(&tmp.join("status_page.png"));

        // A new tab (its own sessionStorage) with a wrong token: an error, and no data.
        browser.open(&url);
        log_in(&mut browser, "not-the-admin-token-0000");
        let s = browser.wait_for(
            PAGE_STATE_JS,
            |s| s["login"] == true && text(&s["error"]).contains("wrong admin token"),
            "the page to say the token is wrong",
        );
        assert_eq!(s["content"], false, "data shown under a wrong token: {s}");

        // The right token after all; then the daemon goes away: the page says so and keeps
        // what it showed last.
        log_in(&mut browser, &w.admin_token);
        browser.wait_for(
            PAGE_STATE_JS,
            |s| s["content"] == true && has_row(s, "held", |r| r[1] == "4"),
            "the page to show the status after the right token",
        );
        w.kill9();
        let s = browser.wait_for(
            PAGE_STATE_JS,
            |s| text(&s["error"]).contains("Cannot read the daemon's status"),
            "the page to say the daemon does not answer",
        );
        assert!(has_row(&s, "held", |r| r[1] == "4"), "{s}");
        browser.close();
    });
}

/// Waits for the page to ask for the token, saying why (not a blank page), then types `token`
/// into its field and presses Enter.
fn log_in(b: &mut Browser, token: &str) {
    b.wait_for(
        PAGE_STATE_JS,
        |s| s["login"] == true && text(&s["error"]).contains("The admin API refused: "),
        "the page to ask for the admin token",
    );
    b.eval(r#"document.getElementById("token").focus()"#);
    b.insert_text(token);
    b.key("Enter", "Enter", 13, Some("\r"), 0, &[]);
}
