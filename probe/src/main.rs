//! `vxflow`: parses arguments, sets up logging, and hands over to the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use vxflow::{
    cli::{Cli, Command},
    config::{FileConfig, Overrides},
};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "vxflow failed");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig { file } => {
            let config = FileConfig::load(&file)?.resolve(&Overrides::default())?;
            println!("{config:#?}");
            println!("{}: OK", file.display());
            Ok(())
        }
        Command::Run(args) => {
            let file = match &args.config {
                Some(path) => FileConfig::load(path)?,
                None => FileConfig::default(),
            };
            let config = file.resolve(&args.overrides())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let mut sinks = vxflow::export::open_sinks(&config)?;
            runtime.block_on(vxflow::daemon::run(config, &mut sinks))?;
            Ok(())
        }
    }
}
