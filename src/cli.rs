//! The command line: `marketd serve`, `marketd ctl …`, `marketd check`,
//! `marketd backup`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "marketd",
    version,
    about = "Runs a marketplace's supplier network"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Talk to a running daemon over HTTP.
    Ctl(crate::ctl::CtlArgs),
    /// Copy the running daemon's store, consistently, to a new file.
    Backup {
        /// Where to write the copy (a new file on the daemon's machine).
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        connection: crate::ctl::Connection,
    },
    /// Verify a store's invariants offline (the daemon must be stopped).
    Check {
        /// The data directory.
        #[arg(long, env = "MARKETD_DATA", default_value = "marketd-data")]
        data: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Data directory (the redb file and the operator token live here).
    #[arg(long, env = "MARKETD_DATA")]
    pub data: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "MARKETD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file.
    #[arg(long, env = "MARKETD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log line format.
    #[arg(long, env = "MARKETD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Shift the daemon's clock by this many seconds (for SLA drills and tests).
    #[arg(
        long,
        env = "MARKETD_CLOCK_OFFSET_S",
        hide = true,
        allow_hyphen_values = true
    )]
    pub clock_offset_s: Option<i64>,
}

impl ServeArgs {
    /// Defaults, then the file, then environment and flags.
    pub fn into_config(self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if let Some(data) = self.data {
            config.data_dir = data;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(format) = self.log_format {
            config.log_format = format;
        }
        if let Some(offset) = self.clock_offset_s {
            config.clock_offset_s = offset;
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ctl(args) => crate::ctl::run(args),
        Command::Check { data } => crate::check::run(&data),
        Command::Backup { to, connection } => crate::ctl::backup(&connection, &to),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("marketd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("marketd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "marketd failed");
            eprintln!("marketd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MARKETD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
