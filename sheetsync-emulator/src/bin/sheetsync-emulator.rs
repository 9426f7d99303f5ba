//! `sheetsync-emulator`: serve the Google Sheets API v4 emulator on 127.0.0.1.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use sheetsync_emulator::{Config, EmulatorHandle, FaultKind, FaultRule, Latency, QuotaConfig};

/// Local emulator of the Google Sheets API v4 (plus a Drive v3 subset).
#[derive(Debug, Parser)]
#[command(name = "sheetsync-emulator", version)]
struct Args {
    /// Port on 127.0.0.1 (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Read requests per minute per user (bearer token).
    #[arg(long, default_value_t = 60)]
    read_per_user: u32,
    /// Write requests per minute per user (bearer token).
    #[arg(long, default_value_t = 60)]
    write_per_user: u32,
    /// Read requests per minute per project.
    #[arg(long, default_value_t = 300)]
    read_per_project: u32,
    /// Write requests per minute per project.
    #[arg(long, default_value_t = 300)]
    write_per_project: u32,
    /// Switch quotas off.
    #[arg(long)]
    no_quota: bool,
    /// Project number shown in quota errors.
    #[arg(long, default_value_t = 123_456_789_012)]
    project_number: u64,
    /// Fixed latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Random extra latency up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Fraction (0..1) of API requests answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Status used by --error-rate (429, 500, 503, ...).
    #[arg(long, default_value_t = 503)]
    error_status: u16,
    /// Fraction (0..1) of API requests whose connection is dropped.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// JSON state file: loaded at start if present, saved on shutdown and on POST /__emulator/save.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Clip explicitly bounded ranges that end beyond the grid instead of answering 400.
    #[arg(long)]
    clip_ranges: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let mut faults = Vec::new();
    if a.error_rate > 0.0 {
        faults.push(FaultRule {
            kind: FaultKind::Status {
                status: a.error_status,
            },
            times: None,
            rate: Some(a.error_rate),
            method: None,
        });
    }
    if a.drop_rate > 0.0 {
        faults.push(FaultRule {
            kind: FaultKind::Drop,
            times: None,
            rate: Some(a.drop_rate),
            method: None,
        });
    }
    let config = Config {
        port: a.port,
        quota: QuotaConfig {
            enabled: !a.no_quota,
            read_per_user: a.read_per_user,
            write_per_user: a.write_per_user,
            read_per_project: a.read_per_project,
            write_per_project: a.write_per_project,
            project_number: a.project_number,
            ..QuotaConfig::google()
        },
        latency: Latency {
            fixed_ms: a.latency_ms,
            jitter_ms: a.jitter_ms,
        },
        faults,
        clip_explicit_ranges: a.clip_ranges,
        state_file: a.state_file,
        ..Config::default()
    };
    let emu = EmulatorHandle::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", emu.base_url())?;
        out.flush()?;
    }
    shutdown_signal().await;
    emu.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
