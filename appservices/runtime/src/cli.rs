//! The command line every Haven appservice shares: `NAME --config PATH`, `--help`, `--version`,
//! and errors written for people (`NAME: cannot read x.toml: No such file or directory`, exit
//! status 1), never Rust's debug form.

use std::{future::Future, path::PathBuf, process::ExitCode};

use crate::BoxError;

/// What a program says about itself in `--help` and `--version`.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The binary's name, e.g. `sms-bridge`.
    pub name: &'static str,
    /// Its version (`env!("CARGO_PKG_VERSION")` of the binary's crate).
    pub version: &'static str,
    /// One sentence on what it does.
    pub about: &'static str,
    /// More help after the options: environment variables, where the settings are described.
    pub after_help: &'static str,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The settings file.
    pub config: PathBuf,
}

fn command(program: &Program) -> clap::Command {
    clap::Command::new(program.name)
        .version(program.version)
        .about(program.about)
        .after_help(program.after_help)
        .arg(
            clap::Arg::new("config")
                .short('c')
                .long("config")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .required(true)
                .help("The settings file (TOML)"),
        )
}

/// Parses `args` (the program name first). `Err` is clap's answer: help, the version, or a usage
/// error, each ready to print with its exit status.
pub fn parse<I, T>(program: &Program, args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command(program).try_get_matches_from(args)?;
    let config = matches
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_default();
    Ok(Args { config })
}

/// An error and its causes on one line: `a: b: c`.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// An appservice binary's `main`: `appservice_main!(name, about, after_help, run)` runs
/// `run(settings_path)` through [`run`], with the binary crate's own version.
#[macro_export]
macro_rules! appservice_main {
    ($name:literal, $about:literal, $after_help:literal, $run:path) => {
        fn main() -> std::process::ExitCode {
            $crate::cli::run(
                $crate::cli::Program {
                    name: $name,
                    version: env!("CARGO_PKG_VERSION"),
                    about: $about,
                    after_help: $after_help,
                },
                $run,
            )
        }
    };
}

/// The whole life of an appservice binary: parses the command line, takes the listening sockets
/// it was handed (before any thread starts), starts logging and the Tokio runtime, runs `main`
/// with the settings path, and reports its error for people.
pub fn run<F, Fut>(program: Program, main: F) -> ExitCode
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Result<(), BoxError>>,
{
    let args = match parse(&program, std::env::args_os()) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    crate::server::take_inherited_sockets();
    crate::init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the runtime: {e}", program.name);
            return ExitCode::from(1);
        }
    };
    match rt.block_on(main(args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {}", program.name, describe(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Program = Program {
        name: "demo",
        version: "1.2.3",
        about: "A demo.",
        after_help: "Settings: see the docs.",
    };

    #[test]
    fn config_long_short_and_missing() {
        let a = parse(&P, ["demo", "--config", "x.toml"]).unwrap();
        assert_eq!(a.config, PathBuf::from("x.toml"));
        let a = parse(&P, ["demo", "-c", "y.toml"]).unwrap();
        assert_eq!(a.config, PathBuf::from("y.toml"));
        let e = parse(&P, ["demo"]).unwrap_err();
        assert!(e.use_stderr());
        assert!(e.to_string().contains("--config <PATH>"), "{e}");
        let e = parse(&P, ["demo", "x.toml"]).unwrap_err();
        assert!(e.use_stderr());
    }

    #[test]
    fn help_and_version_are_answers_not_errors() {
        let e = parse(&P, ["demo", "--help"]).unwrap_err();
        assert!(!e.use_stderr());
        assert!(e.to_string().contains("A demo."));
        let e = parse(&P, ["demo", "--version"]).unwrap_err();
        assert!(!e.use_stderr());
        assert!(e.to_string().contains("1.2.3"));
    }

    #[test]
    fn causes_on_one_line() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(describe(&e), "outer: inner");
    }
}
