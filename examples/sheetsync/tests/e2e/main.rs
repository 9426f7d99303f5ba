//! End-to-end tests of the `sheetsync` daemon, run as a separate process the way people run it,
//! against the Sheets emulator (in process) and PostgreSQL, MariaDB/MySQL and SQLite.
//!
//! ```sh
//! cargo test -p sheetsync-cli --test e2e
//! ```
//!
//! PostgreSQL: `SHEETSYNC_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! MariaDB/MySQL: `SHEETSYNC_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/`). Each test
//! creates its own database and drops it at the end; SQLite uses a temporary file. A database
//! server that cannot be reached fails the tests with a message saying how to start one.
//!
//! The daemon is this crate's binary, built by cargo for the tests (`CARGO_BIN_EXE_sheetsync`);
//! `SHEETSYNC_BIN=<path>` runs another one, such as an installed `sheetsync`.
//! `SHEETSYNC_E2E_LOG` sets the daemon's log filter (default `info,sqlx=warn`); a failing test
//! prints the end of the daemon's log and keeps its files (configuration, logs, SQLite database) in a temporary directory it names;
//! `SHEETSYNC_E2E_KEEP=1` keeps them for passing tests too.

#[path = "../browser/mod.rs"]
mod browser;
mod dates;
mod harness;
mod idle;
mod journal;
mod observability;
mod races;
mod replicas;
mod round_trips;
mod rules;
mod scenarios;
mod sharing;
mod sheet_status;
mod status_page;
// The gspread virtualenv the emulator's Python client test makes, shared with the date test.
#[path = "../../../../sheetsync-emulator/tests/python/venv.rs"]
mod venv;

macro_rules! backend_tests {
    ($module:ident, $backend:ident; $($scenario:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    crate::scenarios::$scenario(crate::harness::Backend::$backend).await;
                }
            )*
        }
    };
}

macro_rules! e2e {
    ($($scenario:ident),* $(,)?) => {
        backend_tests!(postgres, Postgres; $($scenario),*);
        backend_tests!(mysql, MySql; $($scenario),*);
        backend_tests!(sqlite, Sqlite; $($scenario),*);
    };
}

e2e!(
    crud_both_ways,
    conflicts_under_each_resolver,
    column_owner_then_manual,
    last_write_wins_keeps_the_later_edit,
    deletes_and_mass_delete_guard,
    bad_cells_held_and_released,
    kill_9_mid_cycle,
    kill_9_between_sheet_write_and_state_commit,
    kill_9_during_a_burst_of_updates_and_deletes,
    repointed_mapping_refused_until_reset,
    api_error_storms,
    database_connections_killed,
    check_and_plan,
    new_sheet_rows_take_database_defaults,
);

/// One test per database of `$function` (in `$file`), in module `$module`.
macro_rules! per_backend {
    ($module:ident, $file:ident::$function:ident; $($backend:ident: $name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$file::$function(crate::harness::Backend::$backend).await;
                }
            )*
        }
    };
}

per_backend!(replicas_take_over, replicas::a_second_daemon_waits_then_takes_over;
    Postgres: postgres, MySql: mysql, Sqlite: sqlite);
per_backend!(rolling_restart_loses_nothing, replicas::a_rolling_restart_under_a_stream_of_edits_loses_nothing;
    Postgres: postgres, MySql: mysql, Sqlite: sqlite);

per_backend!(replicas_share_mappings, sharing::three_replicas_share_six_mappings;
    Postgres: postgres, MySql: mysql);

// SQLite's lease is a file lock, held by a paused process too: PostgreSQL and MariaDB only.
per_backend!(paused_owner_stands_down, replicas::a_paused_owner_stands_down_when_it_resumes;
    Postgres: postgres, MySql: mysql);
per_backend!(log_files_are_plain_text, observability::a_log_file_is_plain_text_and_reports_the_initial_sync;
    Sqlite: sqlite);
per_backend!(json_mode_is_all_json, observability::json_mode_writes_only_json;
    Sqlite: sqlite, Postgres: postgres);
per_backend!(held_rows_and_deletes_logged_once, observability::held_rows_and_deletes_are_logged_once;
    Sqlite: sqlite, MySql: mysql);
per_backend!(journal_person_edits, journal::person_edits_arrive_through_the_journal_even_after_it_is_deleted;
    Postgres: postgres, MySql: mysql, Sqlite: sqlite);
per_backend!(journal_api_writes, journal::an_api_write_by_another_program_reaches_the_database;
    Postgres: postgres, MySql: mysql, Sqlite: sqlite);
per_backend!(journal_restart_and_trim, journal::a_restart_resumes_from_the_journal_and_consumed_entries_are_trimmed;
    Postgres: postgres, MySql: mysql, Sqlite: sqlite);
per_backend!(webhook_deliveries_counted, observability::webhook_deliveries_are_counted;
    Sqlite: sqlite);
per_backend!(status_page_in_a_browser, status_page::shows_held_rows_conflicts_and_pending_deletes;
    Sqlite: sqlite);
per_backend!(long_full_reads_log_progress, observability::long_full_reads_log_their_progress;
    Sqlite: sqlite);
per_backend!(dates_through_gspread, dates::dates_read_as_dates_through_gspread;
    Sqlite: sqlite, Postgres: postgres);
per_backend!(sheet_status_notes, sheet_status::held_rows_and_conflicts_get_notes_until_they_sync;
    Sqlite: sqlite, Postgres: postgres, MySql: mysql);
per_backend!(sheet_status_column, sheet_status::held_rows_and_conflicts_fill_a_status_column_until_they_sync;
    Sqlite: sqlite, Postgres: postgres);
