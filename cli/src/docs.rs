//! `tokenvault completions SHELL` and `tokenvault manpage`: generated from the same clap
//! definitions the parser uses, so they cannot drift from the commands.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::CliError;
use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, CliError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tokenvault", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

pub fn manpage() -> Result<ExitCode, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::io::stdout().lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}
