//! `escalation`'s command line: `--config PATH`, `--help`, `--version`, errors for people.

#[test]
fn escalation_command_line_speaks_to_people() {
    haven_testkit::check_command_line(
        std::path::Path::new(env!("CARGO_BIN_EXE_escalation")),
        "escalation",
    );
}
