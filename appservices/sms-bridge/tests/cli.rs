//! `sms-bridge`'s command line: `--config PATH`, `--help`, `--version`, errors for people.

#[test]
fn sms_bridge_command_line_speaks_to_people() {
    haven_testkit::check_command_line(
        std::path::Path::new(env!("CARGO_BIN_EXE_sms-bridge")),
        "sms-bridge",
    );
}
