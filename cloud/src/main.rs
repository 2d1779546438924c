//! `nimbus-cloud`: the cloud tier's single binary.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use nimbus_cloud::cli::events;
use nimbus_core::topics::{Environment, Topic};

#[derive(Parser)]
#[command(name = "nimbus-cloud", version, about = "NimbusU Edge cloud tier")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the seed's event contract.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Check events (one JSON document, a JSON array or JSON lines) against the contract.
    /// Exit status 0 when every event is valid, 1 when any is not, 2 when the input cannot be read.
    Validate {
        /// File to read; `-` or nothing reads standard input.
        file: Option<PathBuf>,
        /// Require every event to belong to this topic (e.g. attendance.events, dlq.events).
        #[arg(long, value_parser = parse_topic)]
        topic: Option<Topic>,
    },
    /// Print the 13 topics with partitions, retention, replication and partition key.
    Topics {
        /// Replication settings for this environment.
        #[arg(long, value_enum, default_value_t = Env::Production)]
        env: Env,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the 9 consumer groups and their subscriptions.
    Groups,
}

#[derive(Clone, Copy, ValueEnum)]
enum Env {
    Development,
    Production,
}

fn parse_topic(s: &str) -> Result<Topic, String> {
    s.parse().map_err(|e| format!("{e}; known topics: {}", Topic::ALL.map(|t| t.name()).join(", ")))
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Events { command } => match command {
            EventsCommand::Validate { file, topic } => {
                let text = match read_input(file) {
                    Ok(text) => text,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return Ok(ExitCode::from(2));
                    }
                };
                let verdicts = events::validate(&text, topic);
                print!("{}", events::render(&verdicts));
                Ok(if events::all_valid(&verdicts) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            EventsCommand::Topics { env, json } => {
                let env = match env {
                    Env::Development => Environment::Development,
                    Env::Production => Environment::Production,
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&events::topics_json(env))?);
                } else {
                    print!("{}", events::topics_table(env));
                }
                Ok(ExitCode::SUCCESS)
            }
            EventsCommand::Groups => {
                print!("{}", events::groups_table());
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

fn read_input(file: Option<PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            Ok(text)
        }
    }
}
