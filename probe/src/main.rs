//! `vxflow`: parses arguments, sets up logging, and hands over to the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use vxflow::{
    cli::{Cli, Command, CtlCommand},
    config::{ConfigSource, FileConfig, Overrides},
    control::{Request, Response},
};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // netlink-proto logs a message it cannot decode (an interface name
        // that is not UTF-8) as a hex dump at every rescan; vxflow reports
        // such interfaces itself, once.
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,netlink_proto::codecs=off")),
        )
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
        Command::CheckConfig { file, quiet } => {
            let config = FileConfig::load(&file)?.resolve(&Overrides::default())?;
            if !quiet {
                println!("{config:#?}");
                println!("{}: OK", file.display());
            }
            Ok(())
        }
        Command::Ctl(args) => {
            let request = match args.command {
                CtlCommand::Stats => Request::Stats,
                CtlCommand::Flows { limit } => Request::Flows { limit },
                CtlCommand::ExpireAll => Request::ExpireAll,
                CtlCommand::Pods => Request::Pods,
            };
            let response = vxflow::control::client::query(&args.socket, &request)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&response)?);
            } else {
                print!("{}", vxflow::control::print::text(&response));
            }
            if let Response::Error(why) = response {
                anyhow::bail!("vxflow refused: {why}");
            }
            Ok(())
        }
        Command::Replay(args) => {
            let source = ConfigSource { file: args.config.clone(), overrides: args.overrides() };
            let config = source.load()?;
            let summary = vxflow::replay::replay(&config, &args.captures, args.speed, !args.untrusted_tunnels)?;
            eprintln!("{}", summary.line());
            if let Some(why) = summary.stopped {
                anyhow::bail!("a capture ended early: {why}");
            }
            Ok(())
        }
        Command::Run(args) => {
            let source = ConfigSource { file: args.config.clone(), overrides: args.overrides() };
            let config = source.load()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(vxflow::daemon::run(source, config))?;
            Ok(())
        }
    }
}
