//! `concession-agent`: the command line. Parsing and dispatch only; the work is in the
//! library (`app` for the agent's start-up and shutdown, `commands` for the rest, and
//! `commands::cli` for the command line's shape).

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;

use concession_agent::commands;
use concession_agent::commands::cli::{
    CacheAction, Cli, Command, ExportFormat, JournalAction, PosFormat, StatusFormat, StoreAction,
};
use concession_agent::config::StdoutFormat;
use concession_agent::store::Format;
use concession_agent::{app, clock};

fn main() -> ExitCode {
    app::run::init_process();
    run(Cli::parse()).unwrap_or_else(|e| commands::failed(&*e))
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn Error>> {
    let config = app::run::load_config(cli.config.as_deref())?;
    let clock = clock::system();
    let _temp_store = app::run::TempStore::for_config(&config);
    let stdout = cli.pos.map(|p| match p {
        PosFormat::Console => StdoutFormat::Console,
        PosFormat::Jsonl => StdoutFormat::JsonLines,
    });
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => app::run::run_agent(config, cli.board.as_deref(), stdout, clock),
        Command::Ping => commands::ping(&config, clock),
        Command::Call { cmd, fields } => commands::call(&config, clock, &cmd, &fields),
        Command::Lookup {
            barcode,
            amount_cents,
        } => commands::lookup(config, clock, &barcode, amount_cents),
        Command::Cache { action } => match action {
            CacheAction::Stats => commands::cache_stats(&config),
            CacheAction::Clear => commands::cache_clear(&config),
            CacheAction::Prefetch { event } => commands::cache_prefetch(&config, clock, event),
        },
        Command::Journal {
            action:
                JournalAction::Export {
                    format,
                    since,
                    mask_barcodes,
                    scratch,
                },
        } => {
            let format = match format {
                ExportFormat::Jsonl => Format::Jsonl,
                ExportFormat::Csv => Format::Csv,
            };
            commands::journal_export(&config, format, since, mask_barcodes, scratch)
        }
        Command::Store {
            action: StoreAction::Adopt,
        } => commands::store_adopt(&config),
        Command::Status { format } => {
            commands::status(&config, clock, matches!(format, StatusFormat::Json))
        }
        Command::Venue { action } => commands::venue::venue(&config, action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_jsonl_works_with_and_without_the_run_subcommand() {
        for args in [
            vec!["concession-agent", "--pos", "jsonl"],
            vec!["concession-agent", "run", "--pos", "jsonl"],
        ] {
            let cli = Cli::try_parse_from(&args).expect("parses");
            assert!(matches!(cli.pos, Some(PosFormat::Jsonl)), "{args:?}");
            assert!(matches!(cli.command.unwrap_or(Command::Run), Command::Run));
        }
    }
}
