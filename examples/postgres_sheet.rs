//! A PostgreSQL table and a Google Sheet tab in two-way sync, from a host application.
//!
//! ```sh
//! DATABASE_URL=postgres://app@localhost/shop \
//! SHEET_URL='https://docs.google.com/spreadsheets/d/<id>/edit#gid=0' \
//! GOOGLE_APPLICATION_CREDENTIALS=service-account.json \
//! cargo run --example postgres_sheet --features postgres,gsheets
//! ```
//!
//! The key and the columns come from the table (`orders`); change capture is installed if it is
//! missing, and the mapping's state lives in the same database. `SHEETSYNC_SHEETS_URL` points
//! it at an emulator instead of Google (that is how `tests/postgres_sheet.rs` runs it).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sync = sheetsync::SheetSync::builder()
        .database(std::env::var("DATABASE_URL")?, "orders")
        .sheet(&std::env::var("SHEET_URL")?)
        .install_capture(true)
        .start()
        .await?;
    tokio::signal::ctrl_c().await?;
    Ok(sync.shutdown().await?)
}
